/**
 * The firewall plugin's iptables and nftables backends, and bridge isolation on its own (what the
 * firewalld backend uses), without root: every step's host state compared with literal text.
 * test/integration/firewall*.test.ts prove the same layouts on the kernel with real packets.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeHost } from "../../../src/hoststate/fake.js";
import { nftOwnerHash } from "../../../src/cni/attachment.js";
import type { HostStateBackend } from "../../../src/hoststate/index.js";
import { firewallBackends, isolationBackends } from "../../../plugins/meta/firewall/backends.js";
import type { FirewallSpec } from "../../../plugins/meta/firewall/firewall_backend.js";
import { NFT_TABLE, type NftablesFirewall } from "../../../plugins/meta/firewall/firewall_nftables.js";
import { spyReads } from "../../helpers/nft-reads.js";

type Name = "iptables" | "nftables";
const A = { network: "net1", containerId: "ctr1", ifname: "eth0" };
const B = { network: "net1", containerId: "ctr2", ifname: "eth0" };
/** Another network: a GC of net1 never touches it. */
const C = { network: "net2", containerId: "ctr3", ifname: "eth0" };
const BASE: FirewallSpec = {
  addresses: [],
  adminChain: "CNI-ADMIN",
  zone: "trusted",
  ingressPolicy: "open",
  mark: 0x1000,
};
/** Dual stack, ingressPolicy open. */
const SPEC_A: FirewallSpec = { ...BASE, addresses: ["10.88.0.5/32", "fd00::5/128"], bridge: "cni0" };
const SPEC_B: FirewallSpec = {
  ...BASE,
  addresses: ["10.88.0.6/32"],
  ingressPolicy: "same-bridge",
  bridge: "cni0",
};
const SPEC_C: FirewallSpec = {
  ...BASE,
  addresses: ["10.99.0.7/32"],
  ingressPolicy: "isolated",
  bridge: "cni1",
};

async function threeAttached(name: Name): Promise<[FakeHost, HostStateBackend<FirewallSpec>]> {
  const host = new FakeHost();
  const b = firewallBackends(host).find((x) => x.name === name)!;
  await b.setUp(A, SPEC_A);
  await b.setUp(B, SPEC_B);
  await b.setUp(C, SPEC_C);
  return [host, b];
}

const NFTABLES_ADD = String.raw`add table inet cni_nft_firewall { comment "cni-nft firewall plugin: forward accept for containers, bridge isolation" ; }
add counter inet cni_nft_firewall mark_0x00001000 { comment "the accept mark of the forward rules" ; }
add chain inet cni_nft_firewall admin { comment "operator rules, never flushed by cni-nft" ; }
add chain inet cni_nft_firewall forward { type filter hook forward priority -10 ; policy accept ; }
add chain inet cni_nft_firewall isolation
add set inet cni_nft_firewall bridge_pairs { type ifname . ifname ; }
add set inet cni_nft_firewall bridges { type ifname ; comment "bridges with ingressPolicy same-bridge or isolated" ; }
add set inet cni_nft_firewall containers4 { type ipv4_addr ; comment "container addresses (comment: owner)" ; }
add set inet cni_nft_firewall containers6 { type ipv6_addr ; comment "container addresses (comment: owner)" ; }
add set inet cni_nft_firewall isolated_pairs { type ifname . ifname ; }
add set inet cni_nft_firewall owners { type ifname . ifname ; comment "owner tag . address tag, one per address (comment: owner)" ; }
add rule inet cni_nft_firewall forward jump isolation
add rule inet cni_nft_firewall forward jump admin
add rule inet cni_nft_firewall forward ip daddr @containers4 ct state established,related meta mark set meta mark | 0x00001000 accept
add rule inet cni_nft_firewall forward ip saddr @containers4 meta mark set meta mark | 0x00001000 accept
add rule inet cni_nft_firewall forward ip6 daddr @containers6 ct state established,related meta mark set meta mark | 0x00001000 accept
add rule inet cni_nft_firewall forward ip6 saddr @containers6 meta mark set meta mark | 0x00001000 accept
add rule inet cni_nft_firewall isolation iifname . oifname @isolated_pairs drop
add rule inet cni_nft_firewall isolation iifname . oifname @bridge_pairs return
add rule inet cni_nft_firewall isolation iifname @bridges oifname @bridges drop
add element inet cni_nft_firewall bridge_pairs { cni0 . cni0, cni1 . cni1 }
add element inet cni_nft_firewall bridges { cni0, cni1 }
add element inet cni_nft_firewall containers4 { 10.88.0.5 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 10.88.0.6 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", 10.99.0.7 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" }
add element inet cni_nft_firewall containers6 { fd00::5 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" }
add element inet cni_nft_firewall isolated_pairs { cni1 . cni1 }
add element inet cni_nft_firewall owners { 8911529e0e42a90 . a23eb55d14a2658 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", 9fb6ac25b24dfdc . d83d413b92abbe8 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . fd363a112c5ccf5 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", c341cbe82cf3de1 . ef143157fb8f78d comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" }
`;
const NFTABLES_DEL = String.raw`add table inet cni_nft_firewall { comment "cni-nft firewall plugin: forward accept for containers, bridge isolation" ; }
add counter inet cni_nft_firewall mark_0x00001000 { comment "the accept mark of the forward rules" ; }
add chain inet cni_nft_firewall admin { comment "operator rules, never flushed by cni-nft" ; }
add chain inet cni_nft_firewall forward { type filter hook forward priority -10 ; policy accept ; }
add chain inet cni_nft_firewall isolation
add set inet cni_nft_firewall bridge_pairs { type ifname . ifname ; }
add set inet cni_nft_firewall bridges { type ifname ; comment "bridges with ingressPolicy same-bridge or isolated" ; }
add set inet cni_nft_firewall containers4 { type ipv4_addr ; comment "container addresses (comment: owner)" ; }
add set inet cni_nft_firewall containers6 { type ipv6_addr ; comment "container addresses (comment: owner)" ; }
add set inet cni_nft_firewall isolated_pairs { type ifname . ifname ; }
add set inet cni_nft_firewall owners { type ifname . ifname ; comment "owner tag . address tag, one per address (comment: owner)" ; }
add rule inet cni_nft_firewall forward jump isolation
add rule inet cni_nft_firewall forward jump admin
add rule inet cni_nft_firewall forward ip daddr @containers4 ct state established,related meta mark set meta mark | 0x00001000 accept
add rule inet cni_nft_firewall forward ip saddr @containers4 meta mark set meta mark | 0x00001000 accept
add rule inet cni_nft_firewall forward ip6 daddr @containers6 ct state established,related meta mark set meta mark | 0x00001000 accept
add rule inet cni_nft_firewall forward ip6 saddr @containers6 meta mark set meta mark | 0x00001000 accept
add rule inet cni_nft_firewall isolation iifname . oifname @isolated_pairs drop
add rule inet cni_nft_firewall isolation iifname . oifname @bridge_pairs return
add rule inet cni_nft_firewall isolation iifname @bridges oifname @bridges drop
add element inet cni_nft_firewall bridge_pairs { cni0 . cni0, cni1 . cni1 }
add element inet cni_nft_firewall bridges { cni0, cni1 }
add element inet cni_nft_firewall containers4 { 10.88.0.6 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", 10.99.0.7 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" }
add element inet cni_nft_firewall isolated_pairs { cni1 . cni1 }
add element inet cni_nft_firewall owners { 8911529e0e42a90 . a23eb55d14a2658 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", c341cbe82cf3de1 . ef143157fb8f78d comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" }
`;
const NFTABLES_ISOLATION = String.raw`add table inet cni_nft_firewall { comment "cni-nft firewall plugin: forward accept for containers, bridge isolation" ; }
add counter inet cni_nft_firewall mark_0x00001000 { comment "the accept mark of the forward rules" ; }
add chain inet cni_nft_firewall admin { comment "operator rules, never flushed by cni-nft" ; }
add chain inet cni_nft_firewall forward { type filter hook forward priority -10 ; policy accept ; }
add chain inet cni_nft_firewall isolation
add set inet cni_nft_firewall bridge_pairs { type ifname . ifname ; }
add set inet cni_nft_firewall bridges { type ifname ; comment "bridges with ingressPolicy same-bridge or isolated" ; }
add set inet cni_nft_firewall containers4 { type ipv4_addr ; comment "container addresses (comment: owner)" ; }
add set inet cni_nft_firewall containers6 { type ipv6_addr ; comment "container addresses (comment: owner)" ; }
add set inet cni_nft_firewall isolated_pairs { type ifname . ifname ; }
add set inet cni_nft_firewall owners { type ifname . ifname ; comment "owner tag . address tag, one per address (comment: owner)" ; }
add rule inet cni_nft_firewall forward jump isolation
add rule inet cni_nft_firewall forward jump admin
add rule inet cni_nft_firewall forward ip daddr @containers4 ct state established,related meta mark set meta mark | 0x00001000 accept
add rule inet cni_nft_firewall forward ip saddr @containers4 meta mark set meta mark | 0x00001000 accept
add rule inet cni_nft_firewall forward ip6 daddr @containers6 ct state established,related meta mark set meta mark | 0x00001000 accept
add rule inet cni_nft_firewall forward ip6 saddr @containers6 meta mark set meta mark | 0x00001000 accept
add rule inet cni_nft_firewall isolation iifname . oifname @isolated_pairs drop
add rule inet cni_nft_firewall isolation iifname . oifname @bridge_pairs return
add rule inet cni_nft_firewall isolation iifname @bridges oifname @bridges drop
add element inet cni_nft_firewall bridge_pairs { cni0 . cni0 }
add element inet cni_nft_firewall bridges { cni0 }
add element inet cni_nft_firewall isolated_pairs { cni0 . cni0 }
`;
const IPTABLES_ADD = String.raw`# iptables
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CNI-ADMIN - [0:0]
:CNI-FORWARD - [0:0]
:CNI-ISOLATION-STAGE-1 - [0:0]
:CNI-ISOLATION-STAGE-2 - [0:0]
-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d 10.88.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT
-A CNI-FORWARD -d 10.88.0.6/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.88.0.6/32 -j ACCEPT
-A CNI-FORWARD -d 10.99.0.7/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.99.0.7/32 -j ACCEPT
-A CNI-ISOLATION-STAGE-1 -i cni1 -o cni1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP
-A CNI-ISOLATION-STAGE-1 -i cni1 ! -o cni1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j CNI-ISOLATION-STAGE-2
-A CNI-ISOLATION-STAGE-1 -i cni0 ! -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-2
-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
-A CNI-ISOLATION-STAGE-2 -o cni1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP
-A CNI-ISOLATION-STAGE-2 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP
-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
COMMIT
# ip6tables
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CNI-ADMIN - [0:0]
:CNI-FORWARD - [0:0]
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d fd00::5/128 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s fd00::5/128 -j ACCEPT
COMMIT
`;
const IPTABLES_DEL = String.raw`# iptables
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CNI-ADMIN - [0:0]
:CNI-FORWARD - [0:0]
:CNI-ISOLATION-STAGE-1 - [0:0]
:CNI-ISOLATION-STAGE-2 - [0:0]
-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
-A CNI-FORWARD -d 10.88.0.6/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.88.0.6/32 -j ACCEPT
-A CNI-FORWARD -d 10.99.0.7/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.99.0.7/32 -j ACCEPT
-A CNI-ISOLATION-STAGE-1 -i cni1 -o cni1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP
-A CNI-ISOLATION-STAGE-1 -i cni1 ! -o cni1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j CNI-ISOLATION-STAGE-2
-A CNI-ISOLATION-STAGE-1 -i cni0 ! -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-2
-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
-A CNI-ISOLATION-STAGE-2 -o cni1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP
-A CNI-ISOLATION-STAGE-2 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP
-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
COMMIT
# ip6tables
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CNI-ADMIN - [0:0]
:CNI-FORWARD - [0:0]
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
COMMIT
`;
const IPTABLES_ISOLATION = String.raw`# iptables
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CNI-ISOLATION-STAGE-1 - [0:0]
:CNI-ISOLATION-STAGE-2 - [0:0]
-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1
-A CNI-ISOLATION-STAGE-1 -i cni0 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP
-A CNI-ISOLATION-STAGE-1 -i cni0 ! -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j CNI-ISOLATION-STAGE-2
-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
-A CNI-ISOLATION-STAGE-2 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP
-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
COMMIT
`;
const NFTABLES_MARK = String.raw`add table inet cni_nft_firewall { comment "cni-nft firewall plugin: forward accept for containers, bridge isolation" ; }
add counter inet cni_nft_firewall mark_0x00004000 { comment "the accept mark of the forward rules" ; }
add chain inet cni_nft_firewall admin { comment "operator rules, never flushed by cni-nft" ; }
add chain inet cni_nft_firewall forward { type filter hook forward priority -10 ; policy accept ; }
add chain inet cni_nft_firewall isolation
add set inet cni_nft_firewall bridge_pairs { type ifname . ifname ; }
add set inet cni_nft_firewall bridges { type ifname ; comment "bridges with ingressPolicy same-bridge or isolated" ; }
add set inet cni_nft_firewall containers4 { type ipv4_addr ; comment "container addresses (comment: owner)" ; }
add set inet cni_nft_firewall containers6 { type ipv6_addr ; comment "container addresses (comment: owner)" ; }
add set inet cni_nft_firewall isolated_pairs { type ifname . ifname ; }
add set inet cni_nft_firewall owners { type ifname . ifname ; comment "owner tag . address tag, one per address (comment: owner)" ; }
add rule inet cni_nft_firewall forward jump isolation
add rule inet cni_nft_firewall forward jump admin
add rule inet cni_nft_firewall forward ip daddr @containers4 ct state established,related meta mark set meta mark | 0x00004000 accept
add rule inet cni_nft_firewall forward ip saddr @containers4 meta mark set meta mark | 0x00004000 accept
add rule inet cni_nft_firewall forward ip6 daddr @containers6 ct state established,related meta mark set meta mark | 0x00004000 accept
add rule inet cni_nft_firewall forward ip6 saddr @containers6 meta mark set meta mark | 0x00004000 accept
add rule inet cni_nft_firewall isolation iifname . oifname @isolated_pairs drop
add rule inet cni_nft_firewall isolation iifname . oifname @bridge_pairs return
add rule inet cni_nft_firewall isolation iifname @bridges oifname @bridges drop
add element inet cni_nft_firewall bridge_pairs { cni0 . cni0, cni1 . cni1 }
add element inet cni_nft_firewall bridges { cni0, cni1 }
add element inet cni_nft_firewall containers4 { 10.88.0.5 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 10.88.0.6 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", 10.99.0.7 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" }
add element inet cni_nft_firewall containers6 { fd00::5 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" }
add element inet cni_nft_firewall isolated_pairs { cni1 . cni1 }
add element inet cni_nft_firewall owners { 8911529e0e42a90 . a23eb55d14a2658 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", 9fb6ac25b24dfdc . d83d413b92abbe8 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . fd363a112c5ccf5 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", c341cbe82cf3de1 . ef143157fb8f78d comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" }
`;

for (const name of ["nftables", "iptables"] as const) {
  const ADD = name === "nftables" ? NFTABLES_ADD : IPTABLES_ADD;
  const DEL = name === "nftables" ? NFTABLES_DEL : IPTABLES_DEL;

  test(`firewall ${name}: ADD of three attachments (dual stack; open, same-bridge, isolated)`, async () => {
    const [host] = await threeAttached(name);
    assert.equal(await host.dump(), ADD);
  });

  test(`firewall ${name}: a second ADD changes nothing`, async () => {
    const [host, b] = await threeAttached(name);
    await b.setUp(A, SPEC_A);
    assert.equal(await host.dump(), ADD);
    assert.deepEqual(await b.check(A, SPEC_A), []);
  });

  test(`firewall ${name}: DEL removes the attachment's accept entries, isolation stays; DEL again changes nothing`, async () => {
    const [host, b] = await threeAttached(name);
    await b.remove(A, SPEC_A);
    assert.equal(await host.dump(), DEL);
    await b.remove(A, SPEC_A);
    assert.equal(await host.dump(), DEL);
  });

  test(`firewall ${name}: DEL on an empty host succeeds and writes nothing`, async () => {
    const host = new FakeHost();
    await firewallBackends(host)
      .find((x) => x.name === name)!
      .remove(A, SPEC_A);
    assert.equal(await host.dump(), "");
  });

  test(`firewall ${name}: bridge isolation on its own (for firewalld and migrate)`, async () => {
    const host = new FakeHost();
    const iso = isolationBackends(host).find((x) => x.name === name)!;
    const spec = { bridge: "cni0", isolated: true, families: [4 as const], mark: 0x1000 };
    await iso.setUp(A, spec);
    assert.equal(await host.dump(), name === "nftables" ? NFTABLES_ISOLATION : IPTABLES_ISOLATION);
    assert.deepEqual(await iso.check(A, spec), []);
    assert.deepEqual(
      await iso.check(A, { ...spec, bridge: "cni9" }),
      name === "nftables"
        ? [
            "bridge cni9 in set bridges of table inet cni_nft_firewall",
            "bridge cni9 in set bridge_pairs of table inet cni_nft_firewall",
            "bridge cni9 in set isolated_pairs of table inet cni_nft_firewall",
          ]
        : [
            String.raw`iptables rule -A CNI-ISOLATION-STAGE-1 -i cni9 ! -o cni9 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j CNI-ISOLATION-STAGE-2`,
            String.raw`iptables rule -A CNI-ISOLATION-STAGE-1 -i cni9 -o cni9 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP`,
            String.raw`iptables rule -A CNI-ISOLATION-STAGE-2 -o cni9 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP`,
          ],
    );
    // remove() is what a move to another framework does (the plugin's DEL never calls it): the
    // bridge's elements go, or its rules, and with the last bridge the iptables chains.
    assert.equal(await iso.holds(A, spec), true);
    await iso.remove(A, spec);
    assert.equal(await iso.holds(A, spec), false);
    assert.equal(
      await host.dump(),
      name === "nftables"
        ? NFTABLES_ISOLATION.replace(/^add element .*\n/gm, "")
        : "# iptables\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
    );
  });
}

test("firewall nftables: DEL needs no prevResult (elements carry their owner)", async () => {
  const [host, b] = await threeAttached("nftables");
  await b.remove(A);
  assert.equal(await host.dump(), NFTABLES_DEL);
});

test("firewall iptables: DEL without prevResult removes what the record names (upstream cannot)", async () => {
  const [host, b] = await threeAttached("iptables");
  await b.remove(A);
  assert.equal(await host.dump(), IPTABLES_DEL);
  assert.equal(host.records("firewall-iptables").read(nftOwnerHash(A)), undefined, "the record goes last");
});

test("firewall iptables: an ADD of a new attachment on a set-up host and its DEL read nothing: a -C batch of its accepts, one batch each", async () => {
  const [host, b] = await threeAttached("iptables");
  await b.remove(B);
  host.iptables.saves.length = 0;
  const from = host.iptables.restores.length;
  await b.setUp(B, SPEC_B);
  await b.remove(B, SPEC_B);
  assert.deepEqual(host.iptables.saves, []);
  assert.deepEqual(host.iptables.listed.slice(-1), ["4 filter FORWARD"], "FORWARD alone, for its jump");
  assert.deepEqual(
    host.iptables.restores.slice(from).map((r) => r.input),
    [
      String.raw`*filter
-C CNI-FORWARD -d 10.88.0.6/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-C CNI-FORWARD -s 10.88.0.6/32 -j ACCEPT
COMMIT
`,
      String.raw`*filter
-A CNI-FORWARD -d 10.88.0.6/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.88.0.6/32 -j ACCEPT
COMMIT
`,
      String.raw`*filter
-C FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1
-C CNI-ISOLATION-STAGE-1 -i cni0 ! -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-2
-C CNI-ISOLATION-STAGE-2 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP
-C CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
-C CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN
COMMIT
`,
      String.raw`*filter
-D CNI-FORWARD -d 10.88.0.6/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-D CNI-FORWARD -s 10.88.0.6/32 -j ACCEPT
COMMIT
`,
    ],
  );
  await b.remove(A);
  assert.equal(await host.dump(), IPTABLES_DEL.replace(/^-A CNI-FORWARD -[ds] 10\.88\.0\.6.*\n/gm, ""));
});

test("firewall iptables: an ADD with no record of accepts already there (upstream's plugin ADDed the container first) appends no copy", async () => {
  const [host, b] = await threeAttached("iptables");
  // Upstream's accepts carry no owner and it keeps no record: as if its ADD wrote B's.
  await b.remove(B);
  await host.iptables.restore(4, "filter", [
    "-A CNI-FORWARD -d 10.88.0.6/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "-A CNI-FORWARD -s 10.88.0.6/32 -j ACCEPT",
  ]);
  const theirs = await host.dump();
  const from = host.iptables.restores.length;
  await b.setUp(B, SPEC_B);
  assert.equal(await host.dump(), theirs);
  assert.deepEqual(
    host.iptables.restores.slice(from, from + 2).map((r) => r.input.split("\n")[1]),
    [
      "-C CNI-FORWARD -d 10.88.0.6/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
      '-C FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1',
    ],
    "the -C of its accepts, then the isolation's: nothing appended",
  );
});

test("firewall iptables: without FORWARD's jump (first ADD, a flush) or when a batch fails (an accept gone by hand), a read", async () => {
  const [host, b] = await threeAttached("iptables");
  // First ADD on the host: no jump in FORWARD, a read created the chains and jumps.
  assert.deepEqual(host.iptables.saves.slice(0, 2), ["4 filter", "6 filter"]);
  assert.equal(await host.dump(), IPTABLES_ADD);
  // FORWARD flushed: the next ADD reads and puts the jump back.
  await host.iptables.restore(4, "filter", ["-F FORWARD"]);
  await b.remove(B);
  await b.setUp(B, SPEC_B);
  assert.match(
    await host.dump(),
    /-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD\n/,
  );
  // One of A's accepts removed by hand: its DEL's batch fails, the read removes the other.
  await host.iptables.restore(4, "filter", ["-D CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT"]);
  await b.remove(A);
  assert.doesNotMatch(await host.dump(), /10\.88\.0\.5/);
});

test("firewall nftables: GC removes this network's stale entries only", async () => {
  const [host, b] = await threeAttached("nftables");
  await b.gc("net1", [B]);
  assert.equal(await host.dump(), NFTABLES_DEL);
});

test("firewall iptables: GC removes this network's attachments that are not valid, from the records", async () => {
  const [host, b] = await threeAttached("iptables");
  await b.gc("net1", [B]);
  assert.equal(await host.dump(), IPTABLES_DEL);
  assert.deepEqual([...host.records("firewall-iptables").files.values()].sort(), [
    '{"addresses":["10.88.0.6/32"]}',
    '{"addresses":["10.99.0.7/32"]}',
  ]);
});

test("firewall nftables: nftablesMark rewrites the forward rules for the new mark, the old mark's counter goes", async () => {
  const [host, b] = await threeAttached("nftables");
  await b.setUp(A, { ...SPEC_A, mark: 0x4000 });
  assert.equal(await host.dump(), NFTABLES_MARK);
  // And back: the rules follow the mark again (a counter left behind would keep the new ones).
  await b.setUp(A, SPEC_A);
  assert.equal(await host.dump(), NFTABLES_MARK.replaceAll("0x00004000", "0x00001000"));
});

test("firewall nftables: CHECK names the missing element and chain after damage", async () => {
  const [host, b] = await threeAttached("nftables");
  const nft = host.nft("inet", NFT_TABLE);
  await nft.run(
    nft
      .newTransaction()
      .delete({ kind: "element", set: "containers6", key: ["fd00::5"] })
      .delete({
        kind: "rule",
        chain: "forward",
        rule: "",
        handle: (await nft.listRules("forward"))[1]!.handle!,
      })
      .delete({ kind: "chain", name: "admin" }),
  );
  assert.deepEqual(await b.check(A, SPEC_A), [
    "chain admin in table inet cni_nft_firewall",
    'rule "jump admin" in chain forward of table inet cni_nft_firewall',
    "element fd00::5 of set containers6 in table inet cni_nft_firewall",
  ]);
  await nft.run(nft.newTransaction().delete({ kind: "table" }));
  assert.deepEqual(await b.check(A, SPEC_A), ["nftables table inet cni_nft_firewall"]);
});

test("firewall iptables: CHECK names the missing rules and chain after damage", async () => {
  const [host, b] = await threeAttached("iptables");
  await host.iptables.restore(6, "filter", ["-D CNI-FORWARD -s fd00::5/128 -j ACCEPT"]);
  await host.iptables.restore(4, "filter", [
    String.raw`-D CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN`,
    "-X CNI-ADMIN",
  ]);
  assert.deepEqual(await b.check(A, SPEC_A), [
    "iptables chain CNI-ADMIN",
    String.raw`iptables rule -A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN`,
    "ip6tables rule -A CNI-FORWARD -s fd00::5/128 -j ACCEPT",
  ]);
  assert.deepEqual(await b.check(C, SPEC_C), [
    "iptables chain CNI-ADMIN",
    String.raw`iptables rule -A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN`,
  ]);
  // ADD repairs it: chains are created with iptables -N, missing rules added.
  await b.setUp(A, SPEC_A);
  assert.deepEqual(await b.check(A, SPEC_A), []);
});

test("firewall iptables: the operator's admin chain is created, never flushed", async () => {
  const host = new FakeHost();
  await host.iptables.newChain(4, "filter", "MY-ADMIN");
  await host.iptables.restore(4, "filter", ["-A MY-ADMIN -s 10.0.0.0/8 -j DROP"]);
  const b = firewallBackends(host).find((x) => x.name === "iptables")!;
  await b.setUp(A, { ...SPEC_A, addresses: ["10.88.0.5/32"], adminChain: "MY-ADMIN" });
  assert.equal(
    host.iptables.saveText(4, "filter"),
    String.raw`*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CNI-FORWARD - [0:0]
:MY-ADMIN - [0:0]
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j MY-ADMIN
-A CNI-FORWARD -d 10.88.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT
-A MY-ADMIN -s 10.0.0.0/8 -j DROP
COMMIT
`,
  );
});

/** The nft reads the backend makes from now on (its Interface's listing methods, counted). */
const readsOf = (b: HostStateBackend<FirewallSpec>): string[] => spyReads((b as NftablesFirewall).nft);

test("firewall nftables: DEL reads nothing: each address goes with its owner element, by prevResult or the record", async () => {
  for (const spec of [undefined, SPEC_A]) {
    const [host, b] = await threeAttached("nftables");
    if (spec) host.records("firewall-nftables").files.clear();
    const reads = readsOf(b);
    await b.remove(A, spec);
    assert.equal(await host.dump(), NFTABLES_DEL);
    assert.deepEqual(reads, [], spec ? "addresses from prevResult" : "addresses from the record");
    assert.equal(host.records("firewall-nftables").read(nftOwnerHash(A)), undefined, "the record goes last");
  }
});

test("firewall nftables: an address another container took over is left to it by the first one's DEL", async () => {
  const [host, b] = await threeAttached("nftables");
  const D = { ...A, containerId: "ctr4" };
  await b.setUp(D, { ...SPEC_A, addresses: ["10.88.0.5/32"] });
  await b.remove(A);
  const dump = await host.dump();
  assert.match(dump, /10\.88\.0\.5 comment "[0-9a-f-]+, net: net1, if: eth0, id: ctr4"/);
  assert.doesNotMatch(dump, /fd00::5|id: ctr1/);
  await b.remove(D);
  assert.equal(await host.dump(), NFTABLES_DEL);
});

test("firewall nftables: after the address sets were flushed, DEL without prevResult leaves none of its owner elements", async () => {
  const flush = async (host: FakeHost): Promise<void> => {
    const nft = host.nft("inet", NFT_TABLE);
    const tx = nft.newTransaction();
    for (const name of ["containers4", "containers6"]) tx.flush({ kind: "set", name });
    await nft.run(tx);
  };
  // Flushed, then DEL by the record: the same host as DEL first, then the flush.
  const [flushedFirst, b] = await threeAttached("nftables");
  await flush(flushedFirst);
  await b.remove(A);
  const [deletedFirst, b2] = await threeAttached("nftables");
  await b2.remove(A);
  await flush(deletedFirst);
  const flushedSets = /^add element inet cni_nft_firewall containers[46] .*\n/gm;
  assert.equal(
    await flushedFirst.dump(),
    NFTABLES_DEL.replace(flushedSets, ""),
    "B's and C's owner elements stay",
  );
  assert.equal(await flushedFirst.dump(), await deletedFirst.dump());
});

test("firewall nftables: a table of the layout before owner elements: DEL finds its addresses by listing, the next ADD gives every address its owner element", async () => {
  const [host, b] = await threeAttached("nftables");
  const nft = host.nft("inet", NFT_TABLE);
  await nft.run(nft.newTransaction().delete({ kind: "set", name: "owners" }));
  host.records("firewall-nftables").files.clear();
  await b.remove(A);
  const ownersLines = /^add (set|element) inet cni_nft_firewall owners .*\n/gm;
  assert.equal(await host.dump(), NFTABLES_DEL.replace(ownersLines, ""));
  await b.setUp(A, SPEC_A);
  assert.equal(await host.dump(), NFTABLES_ADD);
});

test("firewall nftables: a repeated ADD reads nothing: the addresses its record names are asserted in the one run", async () => {
  const [host, b] = await threeAttached("nftables");
  const reads = readsOf(b);
  await b.setUp(A, SPEC_A);
  await b.setUp(C, SPEC_C);
  assert.deepEqual(reads, []);
  assert.equal(await host.dump(), NFTABLES_ADD);
});

test("firewall nftables: a repeated ADD whose address another container took over lists the sets and takes it back", async () => {
  const [host, b] = await threeAttached("nftables");
  const D = { ...A, containerId: "ctr4" };
  await b.setUp(D, { ...SPEC_A, addresses: ["10.88.0.5/32"] });
  const reads = readsOf(b);
  await b.setUp(A, SPEC_A);
  assert.deepEqual(reads, ["listElements", "listElements", "listElements", "listCounters"]);
  assert.deepEqual(await b.check(A, SPEC_A), []);
  await b.remove(D);
  assert.equal(await host.dump(), NFTABLES_ADD);
});
