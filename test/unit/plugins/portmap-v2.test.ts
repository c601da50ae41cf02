/**
 * portmap's nftables backend on a host that still has the layout before the current one (verdict
 * maps snat4/snat6 jumping to a chain per subnet, portmap_nftables_v2.ts), as left by containers
 * ADDed before an upgrade: CHECK accepts them, DEL removes them, and the first ADD of the new code
 * converts the table in one transaction into exactly what the current code writes.
 * test/integration/portmap-legacy.test.ts proves the upgrade on the kernel with real packets.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { nftOwnerHash } from "../../../src/cni/attachment.js";
import {
  A,
  B,
  C,
  SPEC_A,
  SPEC_B,
  SPEC_C,
  ATTACHED,
  V2_SKELETON,
  currentDump,
  layoutText,
  loadedHost,
} from "./portmap-fixtures.js";

/** What the layout before held after ADD of A, B and C (its golden dump, commit 7280d4d). */
const V2 = layoutText(
  V2_SKELETON,
  String.raw`add chain inet cni_nft_portmap guard4-8e48f37d5de60467-a09553539d4cc24c
add chain inet cni_nft_portmap snat4-15f04f2f13e6
add chain inet cni_nft_portmap snat4-9d8797614eb1
add chain inet cni_nft_portmap snat6-ef330fd8e3d4
add rule inet cni_nft_portmap guard4-8e48f37d5de60467-a09553539d4cc24c ip saddr 192.168.0.0/16 return
add rule inet cni_nft_portmap guard4-8e48f37d5de60467-a09553539d4cc24c accept
add rule inet cni_nft_portmap snat4-15f04f2f13e6 ip saddr 10.88.0.0/24 masquerade
add rule inet cni_nft_portmap snat4-15f04f2f13e6 ip saddr 127.0.0.1 masquerade
add rule inet cni_nft_portmap snat4-9d8797614eb1 ip saddr 10.99.0.0/16 masquerade
add rule inet cni_nft_portmap snat4-9d8797614eb1 ip saddr 127.0.0.1 masquerade
add rule inet cni_nft_portmap snat6-ef330fd8e3d4 ip6 saddr fd00::/64 masquerade
add element inet cni_nft_portmap dnat_any4 { tcp . 7070 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" : 10.99.0.7 . 70, tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 80, udp . 5353 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 53 }
add element inet cni_nft_portmap dnat_any6 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 80, udp . 5353 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 53 }
add element inet cni_nft_portmap dnat_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : 10.88.0.6 . 90 }
add element inet cni_nft_portmap guard_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : jump guard4-8e48f37d5de60467-a09553539d4cc24c }
add element inet cni_nft_portmap owners { 8911529e0e42a90 . 323ad11e19a7d17 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", 8911529e0e42a90 . a2a20028bb9be90 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", 9fb6ac25b24dfdc . 20b7aba123edc9e comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 5e920e465d78dbe comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 81292901f8358b8 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 8837191ab7dac4e comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . d8b40ac236356ad comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . dc876e2eb6e1bc8 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . df2d924ec2520a7 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . f561f26038b2ff9 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", c341cbe82cf3de1 . 2bbb4493146f896 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . 9665ef48d243f91 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . dc1e736ba5289cf comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" }
add element inet cni_nft_portmap snat4 { 10.88.0.5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : jump snat4-15f04f2f13e6, 10.88.0.5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : jump snat4-15f04f2f13e6, 10.88.0.6 . tcp . 90 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : jump snat4-15f04f2f13e6, 10.99.0.7 . tcp . 70 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" : jump snat4-9d8797614eb1 }
add element inet cni_nft_portmap snat6 { fd00::5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : jump snat6-ef330fd8e3d4, fd00::5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : jump snat6-ef330fd8e3d4 }`,
);

test("portmap layout before (snat verdict maps): CHECK accepts its containers", async () => {
  const [, b] = loadedHost(V2);
  for (const [a, s] of ATTACHED) assert.deepEqual(await b.check(a, s), []);
});

test("portmap layout before: DEL with and without mappings removes the container's elements only", async () => {
  const [host, b] = loadedHost(V2);
  assert.deepEqual(await b.remove(A, SPEC_A), { udpPorts: [5353] });
  assert.deepEqual(await b.remove(C), { udpPorts: [] });
  const dump = await host.dump();
  assert.doesNotMatch(dump, /ctr1|ctr3|snat4-9d8797614eb1|snat6-/);
  assert.deepEqual(await b.check(B, SPEC_B), []);
});

test("portmap layout before: the first ADD converts the table into the current layout, every container kept", async () => {
  const [host, b] = loadedHost(V2);
  await b.setUp(B, SPEC_B);
  assert.equal(await host.dump(), await currentDump());
  // The converted containers' DEL is write-only like any other, from a record of the layout
  // before too (its keys in map snat4, its subnet chain snat4-<hash>).
  host.records("portmap").write(nftOwnerHash(A), {
    elements: [
      { kind: "element", map: "dnat_any4", key: ["tcp", "8080"] },
      { kind: "element", map: "dnat_any4", key: ["udp", "5353"] },
      { kind: "element", map: "dnat_any6", key: ["tcp", "8080"] },
      { kind: "element", map: "dnat_any6", key: ["udp", "5353"] },
      { kind: "element", map: "snat4", key: ["10.88.0.5", "tcp", "80"] },
      { kind: "element", map: "snat4", key: ["10.88.0.5", "udp", "53"] },
      { kind: "element", map: "snat6", key: ["fd00::5", "tcp", "80"] },
      { kind: "element", map: "snat6", key: ["fd00::5", "udp", "53"] },
    ],
    chains: [],
    shared: ["snat4-15f04f2f13e6", "snat6-ef330fd8e3d4"],
  });
  await b.remove(A);
  assert.doesNotMatch(await host.dump(), /ctr1|snat_sub6-/);
  await b.remove(B, SPEC_B);
  await b.remove(C, SPEC_C);
  assert.doesNotMatch(await host.dump(), /add element|snat_sub4-|add counter/);
});
