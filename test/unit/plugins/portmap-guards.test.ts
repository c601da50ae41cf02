/**
 * portmap's nftables backend on a host that still has the layout before classes of conditions
 * (per container with conditionsV4/V6 a verdict element per mapping in guard_ip4/guard_any4 and
 * a chain guard4-<owner>, portmap_nftables_guards.ts), as left by containers ADDed before an
 * upgrade: CHECK accepts them, DEL removes them, and the first ADD of the new code converts the
 * table in one transaction into exactly what the current code writes.
 * test/integration/portmap.test.ts proves the upgrade on the kernel with real packets.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { nftOwnerHash } from "../../../src/cni/attachment.js";
import { NFT_TABLE } from "../../../plugins/meta/portmap/portmap_nftables.js";
import { portmapBackends } from "../../../plugins/meta/portmap/backends.js";
import { FakeHost } from "../../../src/hoststate/fake.js";
import {
  A,
  B,
  C,
  SPEC_A,
  SPEC_B,
  SPEC_C,
  ATTACHED,
  GUARDS_SKELETON,
  currentDump,
  layoutText,
  loadedHost,
} from "./portmap-fixtures.js";

/** What the layout before held after ADD of A, B (conditionsV4) and C (its golden dump, commit a1cc07f). */
const GUARDS = layoutText(
  GUARDS_SKELETON,
  String.raw`add counter inet cni_nft_portmap snat_sub4-15f04f2f13e6 { comment "masquerade to 10.88.0.0/24, named by the snat map" ; }
add counter inet cni_nft_portmap snat_sub4-9d8797614eb1 { comment "masquerade to 10.99.0.0/16, named by the snat map" ; }
add counter inet cni_nft_portmap snat_sub6-ef330fd8e3d4 { comment "masquerade to fd00::/64, named by the snat map" ; }
add chain inet cni_nft_portmap guard4-8e48f37d5de60467-a09553539d4cc24c
add chain inet cni_nft_portmap snat_sub4-15f04f2f13e6 { type nat hook postrouting priority 100 ; policy accept ; }
add chain inet cni_nft_portmap snat_sub4-9d8797614eb1 { type nat hook postrouting priority 100 ; policy accept ; }
add chain inet cni_nft_portmap snat_sub6-ef330fd8e3d4 { type nat hook postrouting priority 100 ; policy accept ; }
add rule inet cni_nft_portmap guard4-8e48f37d5de60467-a09553539d4cc24c ip saddr 192.168.0.0/16 return
add rule inet cni_nft_portmap guard4-8e48f37d5de60467-a09553539d4cc24c accept
add rule inet cni_nft_portmap snat_sub4-15f04f2f13e6 ct status dnat ip daddr 10.88.0.0/24 ip saddr 10.88.0.0/24 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add rule inet cni_nft_portmap snat_sub4-15f04f2f13e6 ct status dnat ip daddr 10.88.0.0/24 ip saddr 127.0.0.1 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add rule inet cni_nft_portmap snat_sub4-9d8797614eb1 ct status dnat ip daddr 10.99.0.0/16 ip saddr 10.99.0.0/16 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add rule inet cni_nft_portmap snat_sub4-9d8797614eb1 ct status dnat ip daddr 10.99.0.0/16 ip saddr 127.0.0.1 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add rule inet cni_nft_portmap snat_sub6-ef330fd8e3d4 ct status dnat ip6 daddr fd00::/64 ip6 saddr fd00::/64 counter name ip6 daddr . meta l4proto . th dport map @snat_sub6 masquerade
add element inet cni_nft_portmap dnat_any4 { tcp . 7070 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" : 10.99.0.7 . 70, tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 80, udp . 5353 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 53 }
add element inet cni_nft_portmap dnat_any6 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 80, udp . 5353 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 53 }
add element inet cni_nft_portmap dnat_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : 10.88.0.6 . 90 }
add element inet cni_nft_portmap guard_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : jump guard4-8e48f37d5de60467-a09553539d4cc24c }
add element inet cni_nft_portmap owners { 8911529e0e42a90 . 323ad11e19a7d17 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", 8911529e0e42a90 . d372df98d9382d0 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", 9fb6ac25b24dfdc . 32cdd17bca7675f comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 7e8376e935a5d6a comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 81292901f8358b8 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 8837191ab7dac4e comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . b71c41a2f953881 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . cb6a6e31ab3183b comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . df2d924ec2520a7 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . f561f26038b2ff9 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", c341cbe82cf3de1 . 1d7b3dee6d13454 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . 9665ef48d243f91 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . dc1e736ba5289cf comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" }
add element inet cni_nft_portmap snat_sub4 { 10.88.0.5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub4-15f04f2f13e6, 10.88.0.5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub4-15f04f2f13e6, 10.88.0.6 . tcp . 90 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : snat_sub4-15f04f2f13e6, 10.99.0.7 . tcp . 70 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" : snat_sub4-9d8797614eb1 }
add element inet cni_nft_portmap snat_sub6 { fd00::5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub6-ef330fd8e3d4, fd00::5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub6-ef330fd8e3d4 }`,
);

/** B's record as the layout before wrote it: its guard key in guard_ip4, its guard chain. */
const OLD_RECORD_B = {
  elements: [
    { kind: "element", map: "dnat_ip4", key: ["192.168.1.1", "tcp", "9090"] },
    { kind: "element", map: "guard_ip4", key: ["192.168.1.1", "tcp", "9090"] },
    { kind: "element", map: "snat_sub4", key: ["10.88.0.6", "tcp", "90"] },
  ],
  chains: ["guard4-8e48f37d5de60467-a09553539d4cc24c"],
  shared: ["snat_sub4-15f04f2f13e6"],
};

test("portmap layout before classes: CHECK accepts its containers, with conditions too", async () => {
  const [, b] = loadedHost(GUARDS);
  for (const [a, s] of ATTACHED) assert.deepEqual(await b.check(a, s), []);
});

test("portmap layout before classes: DEL with mappings removes the guarded container's elements and chain", async () => {
  const [host, b] = loadedHost(GUARDS);
  await b.remove(B, SPEC_B);
  assert.doesNotMatch(await host.dump(), /ctr2|guard4-/);
  assert.deepEqual(await b.check(A, SPEC_A), []);
});

test("portmap layout before classes: the first ADD converts every guard into its class, every container kept", async () => {
  const [host, b] = loadedHost(GUARDS);
  await b.setUp(A, SPEC_A);
  assert.equal(await host.dump(), await currentDump());
  assert.deepEqual(await b.check(B, SPEC_B), []);
  assert.deepEqual(
    host
      .records("portmap")
      .uses()
      .filter(([n]) => n.startsWith("cond")),
    [["cond4-2d25284b6bb9", nftOwnerHash(B)]],
  );
  // B's DEL from a record of the layout before (its guard key in guard_ip4, its guard chain).
  host.records("portmap").write(nftOwnerHash(B), OLD_RECORD_B);
  await b.remove(B);
  assert.doesNotMatch(await host.dump(), /ctr2|cond4-|cond_ip4-|guard4-/);
  await b.remove(A, SPEC_A);
  await b.remove(C, SPEC_C);
  assert.doesNotMatch(await host.dump(), /add element|snat_sub4-|add counter/);
});

test("portmap layout before classes: after the upgrade, CHECK and DEL of a container whose config spells its conditions otherwise than nft prints them", async () => {
  // nft prints `ip saddr 192.168.1.1/16` as `ip saddr 192.168.0.0/16`, and the upgrade names a
  // class after nft's text of the guard chain's conditions: B's class is not the config's.
  const spelled = { ...SPEC_B, conditionsV4: ["ip saddr 192.168.1.1/16"] };
  const [host, b] = loadedHost(GUARDS);
  await b.setUp(A, SPEC_A);
  assert.deepEqual(await b.check(B, spelled), []);
  const nft = host.nft("inet", NFT_TABLE);
  await nft.run(
    nft
      .newTransaction()
      .delete({ kind: "element", map: "cond_ip4-2d25284b6bb9", key: ["192.168.1.1", "tcp", "9090"] }),
  );
  assert.deepEqual(await b.check(B, spelled), [
    "element 192.168.1.1 . tcp . 9090 of cond_ip4-47962d2889a5 in table inet cni_nft_portmap",
    "chain cond4-47962d2889a5 in table inet cni_nft_portmap",
    "chain cond4-47962d2889a5-out in table inet cni_nft_portmap",
  ]);

  const [again, c] = loadedHost(GUARDS);
  await c.setUp(A, SPEC_A);
  await c.remove(B, spelled);
  assert.doesNotMatch(await again.dump(), /ctr2|cond4-|cond_ip4-/);
  assert.deepEqual(
    again
      .records("portmap")
      .uses()
      .filter(([, owner]) => owner === nftOwnerHash(B)),
    [],
  );
});

test("portmap layout before classes: after the upgrade, a repeated ADD whose config names another class moves the container completely (elements, note of use, the old class)", async () => {
  const spelled = { ...SPEC_B, conditionsV4: ["ip saddr 192.168.1.1/16"] };
  // What a host with the current layout holds after ADD of A, B (its config's class) and C.
  const fresh = new FakeHost();
  const nb = portmapBackends(fresh).find((x) => x.name === "nftables")!;
  for (const [a, s] of [
    [A, SPEC_A],
    [B, spelled],
    [C, SPEC_C],
  ] as const)
    await nb.setUp(a, s);
  for (const byRecord of [true, false]) {
    const [host, b] = loadedHost(GUARDS);
    // B's record from the layout before (what its ADD then wrote), or none (a record lost).
    if (byRecord) host.records("portmap").write(nftOwnerHash(B), OLD_RECORD_B);
    await b.setUp(A, SPEC_A);
    const reads: string[] = [];
    const listTable = b.nft.listTable.bind(b.nft);
    b.nft.listTable = (opts) => (reads.push("listTable"), listTable(opts));
    await b.setUp(B, spelled);
    b.nft.listTable = listTable;
    assert.deepEqual(reads, byRecord ? [] : ["listTable"], "with its record, a repeated ADD reads nothing");
    await b.setUp(C, SPEC_C);
    assert.equal(await host.dump(), await fresh.dump(), `byRecord ${byRecord}`);
    assert.deepEqual(
      host
        .records("portmap")
        .uses()
        .filter(([n]) => n.startsWith("cond")),
      [["cond4-47962d2889a5", nftOwnerHash(B)]],
    );
    assert.deepEqual(await b.check(B, spelled), []);
    await b.remove(B, spelled);
    assert.doesNotMatch(await host.dump(), /ctr2|cond4-|cond_ip4-/);
  }
});
