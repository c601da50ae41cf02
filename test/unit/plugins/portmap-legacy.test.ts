/**
 * portmap's nftables backend on a host that still has the previous cni-nft layout (interval sets
 * masq4/masq6, no owners set), as left by containers ADDed before an upgrade: CHECK accepts them,
 * DEL removes them, and the first ADD of the new code converts the table in one transaction.
 * test/integration/portmap-legacy.test.ts proves the same on the kernel with the previous build.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeHost } from "../../../src/hoststate/fake.js";
import { portmapBackends, type NftablesPortMapper } from "../../../plugins/meta/portmap/backends.js";
import { NFT_TABLE } from "../../../plugins/meta/portmap/portmap_nftables.js";
import { A, B, C, SPEC_A, SPEC_C, specB } from "./portmap-fixtures.js";

const SPEC_B = specB("nftables");

/** What the previous layout held after ADD of A, B and C (the previous golden dump). */
const LEGACY = String.raw`add table inet cni_nft_portmap { comment "CNI portmap (cni-nft): host ports to containers, state in maps" ; }
add chain inet cni_nft_portmap guard4-8e48f37d5de60467-a09553539d4cc24c
add chain inet cni_nft_portmap hostports
add chain inet cni_nft_portmap output { type nat hook output priority -100 ; policy accept ; }
add chain inet cni_nft_portmap postrouting { type nat hook postrouting priority 100 ; policy accept ; }
add chain inet cni_nft_portmap prerouting { type nat hook prerouting priority -100 ; policy accept ; }
add map inet cni_nft_portmap dnat_any4 { type inet_proto . inet_service : ipv4_addr . inet_service ; }
add map inet cni_nft_portmap dnat_any6 { type inet_proto . inet_service : ipv6_addr . inet_service ; }
add map inet cni_nft_portmap dnat_ip4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service ; }
add map inet cni_nft_portmap dnat_ip6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service ; }
add map inet cni_nft_portmap guard_any4 { type inet_proto . inet_service : verdict ; }
add map inet cni_nft_portmap guard_any6 { type inet_proto . inet_service : verdict ; }
add map inet cni_nft_portmap guard_ip4 { type ipv4_addr . inet_proto . inet_service : verdict ; }
add map inet cni_nft_portmap guard_ip6 { type ipv6_addr . inet_proto . inet_service : verdict ; }
add set inet cni_nft_portmap masq4 { type ipv4_addr . ipv4_addr . inet_proto . inet_service ; flags interval ; }
add set inet cni_nft_portmap masq6 { type ipv6_addr . ipv6_addr . inet_proto . inet_service ; flags interval ; }
add rule inet cni_nft_portmap guard4-8e48f37d5de60467-a09553539d4cc24c ip saddr 192.168.0.0/16 return
add rule inet cni_nft_portmap guard4-8e48f37d5de60467-a09553539d4cc24c accept
add rule inet cni_nft_portmap hostports ip daddr . meta l4proto . th dport vmap @guard_ip4
add rule inet cni_nft_portmap hostports dnat ip to ip daddr . meta l4proto . th dport map @dnat_ip4
add rule inet cni_nft_portmap hostports meta nfproto ipv4 meta l4proto . th dport vmap @guard_any4
add rule inet cni_nft_portmap hostports meta nfproto ipv4 dnat ip to meta l4proto . th dport map @dnat_any4
add rule inet cni_nft_portmap hostports ip6 daddr . meta l4proto . th dport vmap @guard_ip6
add rule inet cni_nft_portmap hostports dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat_ip6
add rule inet cni_nft_portmap hostports meta nfproto ipv6 meta l4proto . th dport vmap @guard_any6
add rule inet cni_nft_portmap hostports meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @dnat_any6
add rule inet cni_nft_portmap output fib daddr type local jump hostports
add rule inet cni_nft_portmap postrouting ct status dnat ip saddr . ip daddr . meta l4proto . th dport @masq4 masquerade
add rule inet cni_nft_portmap postrouting ct status dnat ip6 saddr . ip6 daddr . meta l4proto . th dport @masq6 masquerade
add rule inet cni_nft_portmap prerouting fib daddr type local jump hostports
add element inet cni_nft_portmap dnat_any4 { tcp . 7070 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" : 10.99.0.7 . 70, tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 80, udp . 5353 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 53 }
add element inet cni_nft_portmap dnat_any6 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 80, udp . 5353 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 53 }
add element inet cni_nft_portmap dnat_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : 10.88.0.6 . 90 }
add element inet cni_nft_portmap guard_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : jump guard4-8e48f37d5de60467-a09553539d4cc24c }
add element inet cni_nft_portmap masq4 { 10.88.0.0/24 . 10.88.0.5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 10.88.0.0/24 . 10.88.0.5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 10.88.0.0/24 . 10.88.0.6 . tcp . 90 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", 10.99.0.0/16 . 10.99.0.7 . tcp . 70 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", 127.0.0.1 . 10.88.0.5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 127.0.0.1 . 10.88.0.5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 127.0.0.1 . 10.88.0.6 . tcp . 90 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", 127.0.0.1 . 10.99.0.7 . tcp . 70 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" }
add element inet cni_nft_portmap masq6 { fd00::/64 . fd00::5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", fd00::/64 . fd00::5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" }
`;

function legacyHost(): [FakeHost, NftablesPortMapper] {
  const host = new FakeHost();
  host.nft("inet", NFT_TABLE).load(LEGACY);
  return [host, portmapBackends(host).find((x) => x.name === "nftables") as NftablesPortMapper];
}

test("portmap legacy layout: CHECK accepts its containers", async () => {
  const [, b] = legacyHost();
  assert.deepEqual(await b.check(A, SPEC_A), []);
  assert.deepEqual(await b.check(B, SPEC_B), []);
});

test("portmap legacy layout: DEL with and without mappings removes the container's elements only", async () => {
  const [host, b] = legacyHost();
  assert.deepEqual(await b.remove(A, SPEC_A), { udpPorts: [5353] });
  assert.deepEqual(await b.remove(C), { udpPorts: [] });
  const dump = await host.dump();
  assert.doesNotMatch(dump, /ctr1|ctr3/);
  assert.match(dump, /masq4 \{ 10\.88\.0\.0\/24 \. 10\.88\.0\.6 \. tcp \. 90 comment "[^"]*ctr2"/);
  assert.deepEqual(await b.check(B, SPEC_B), []);
});

test("portmap legacy layout: the first ADD upgrades the table and keeps every container", async () => {
  const [host, b] = legacyHost();
  await b.setUp(B, SPEC_B);
  const dump = await host.dump();
  assert.doesNotMatch(dump, /masq[46]/);
  for (const [a, s] of [
    [A, SPEC_A],
    [B, SPEC_B],
    [C, SPEC_C],
  ] as const)
    assert.deepEqual(await b.check(a, s), []);
  // The converted containers' DEL is write-only like any other.
  await b.remove(A, SPEC_A);
  await b.remove(B, SPEC_B);
  await b.remove(C, SPEC_C);
  assert.doesNotMatch(await host.dump(), /add element/);
});
