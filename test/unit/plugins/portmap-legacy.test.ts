/**
 * portmap's nftables backend on a host that still has the previous cni-nft layout (interval sets
 * masq4/masq6, no owners set), as left by containers ADDed before an upgrade: CHECK accepts them,
 * DEL removes them, and the first ADD of the new code converts the table in one transaction.
 * test/integration/portmap-legacy.test.ts proves the same on the kernel with the previous build.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  A,
  B,
  C,
  SPEC_A,
  SPEC_B,
  SPEC_C,
  ATTACHED,
  LEGACY_SKELETON,
  layoutText,
  loadedHost,
} from "./portmap-fixtures.js";

/** What the previous layout held after ADD of A, B and C (the previous golden dump). */
const LEGACY = layoutText(
  LEGACY_SKELETON,
  String.raw`add chain inet cni_nft_portmap guard4-8e48f37d5de60467-a09553539d4cc24c
add rule inet cni_nft_portmap guard4-8e48f37d5de60467-a09553539d4cc24c ip saddr 192.168.0.0/16 return
add rule inet cni_nft_portmap guard4-8e48f37d5de60467-a09553539d4cc24c accept
add element inet cni_nft_portmap dnat_any4 { tcp . 7070 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" : 10.99.0.7 . 70, tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 80, udp . 5353 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 53 }
add element inet cni_nft_portmap dnat_any6 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 80, udp . 5353 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 53 }
add element inet cni_nft_portmap dnat_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : 10.88.0.6 . 90 }
add element inet cni_nft_portmap guard_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : jump guard4-8e48f37d5de60467-a09553539d4cc24c }
add element inet cni_nft_portmap masq4 { 10.88.0.0/24 . 10.88.0.5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 10.88.0.0/24 . 10.88.0.5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 10.88.0.0/24 . 10.88.0.6 . tcp . 90 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", 10.99.0.0/16 . 10.99.0.7 . tcp . 70 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", 127.0.0.1 . 10.88.0.5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 127.0.0.1 . 10.88.0.5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 127.0.0.1 . 10.88.0.6 . tcp . 90 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", 127.0.0.1 . 10.99.0.7 . tcp . 70 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" }
add element inet cni_nft_portmap masq6 { fd00::/64 . fd00::5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", fd00::/64 . fd00::5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" }`,
);

test("portmap legacy layout: CHECK accepts its containers", async () => {
  const [, b] = loadedHost(LEGACY);
  assert.deepEqual(await b.check(A, SPEC_A), []);
  assert.deepEqual(await b.check(B, SPEC_B), []);
});

test("portmap legacy layout: DEL with and without mappings removes the container's elements only", async () => {
  const [host, b] = loadedHost(LEGACY);
  assert.deepEqual(await b.remove(A, SPEC_A), { udpPorts: [5353] });
  assert.deepEqual(await b.remove(C), { udpPorts: [] });
  const dump = await host.dump();
  assert.doesNotMatch(dump, /ctr1|ctr3/);
  assert.match(dump, /masq4 \{ 10\.88\.0\.0\/24 \. 10\.88\.0\.6 \. tcp \. 90 comment "[^"]*ctr2"/);
  assert.deepEqual(await b.check(B, SPEC_B), []);
});

test("portmap legacy layout: the first ADD upgrades the table and keeps every container", async () => {
  const [host, b] = loadedHost(LEGACY);
  await b.setUp(B, SPEC_B);
  const dump = await host.dump();
  assert.doesNotMatch(dump, /masq[46]/);
  for (const [a, s] of ATTACHED) assert.deepEqual(await b.check(a, s), []);
  // The converted containers' DEL is write-only like any other.
  await b.remove(A, SPEC_A);
  await b.remove(B, SPEC_B);
  await b.remove(C, SPEC_C);
  assert.doesNotMatch(await host.dump(), /add element/);
});
