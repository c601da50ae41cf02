/**
 * portmap nftables: a repeated ADD of an attachment (same container and interface again, no DEL
 * between: a runtime retrying, `cni-nft restore`) finds its own keys from its record and asserts
 * them without reading the table, leaving exactly one copy; only when a recorded key is not its
 * own any more (taken over, or never written) does it list the table, as before. Fake nftables,
 * literal dumps; test/integration/repeat-add.test.ts runs the same on the kernel.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeHost } from "../../../src/hoststate/fake.js";
import { nftOwnerHash } from "../../../src/cni/attachment.js";
import { type NftablesPortMapper } from "../../../plugins/meta/portmap/portmap_nftables.js";
import { A, B, C, SPEC_A, SPEC_C, currentDump, specB, threeAttached } from "./portmap-fixtures.js";
import { spyReads } from "../../helpers/nft-reads.js";

/** A, B and C attached; then the reads and the runs of what follows. */
async function attachedAndCounted(): Promise<[FakeHost, NftablesPortMapper, string[], string[]]> {
  const [host, backend] = await threeAttached("nftables");
  const b = backend as NftablesPortMapper;
  const reads = spyReads(b.nft);
  const runs: string[] = [];
  const nft = b.nft as unknown as Record<string, (...args: unknown[]) => unknown>;
  const run = nft["run"]!.bind(nft);
  nft["run"] = (...args: unknown[]) => {
    runs.push("run");
    return run(...args);
  };
  return [host, b, reads, runs];
}

const elementLines = (dump: string): string =>
  dump
    .split("\n")
    .filter((l) => l.startsWith("add element"))
    .join("\n");
/** The elements after B took port 7070 over and C's repeated ADD took it back. */
const TAKEN_BACK = String.raw`add element inet cni_nft_portmap cond_ip4-2d25284b6bb9 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : cond4-2d25284b6bb9 }
add element inet cni_nft_portmap dnat_any4 { tcp . 7070 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" : 10.99.0.7 . 70, tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 80, udp . 5353 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : 10.88.0.5 . 53 }
add element inet cni_nft_portmap dnat_any6 { tcp . 8080 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 80, udp . 5353 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : fd00::5 . 53 }
add element inet cni_nft_portmap dnat_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : 10.88.0.6 . 90 }
add element inet cni_nft_portmap guarded_ip4 { 192.168.1.1 . tcp . 9090 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" }
add element inet cni_nft_portmap owners { 8911529e0e42a90 . 323ad11e19a7d17 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", 8911529e0e42a90 . d372df98d9382d0 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3", 9fb6ac25b24dfdc . 32cdd17bca7675f comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 7e8376e935a5d6a comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 81292901f8358b8 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . 8837191ab7dac4e comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . b71c41a2f953881 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . cb6a6e31ab3183b comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . df2d924ec2520a7 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", 9fb6ac25b24dfdc . f561f26038b2ff9 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1", c341cbe82cf3de1 . 1d7b3dee6d13454 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . 8fdebb52bb76804 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . 9665ef48d243f91 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . f5ad7506d3bbab5 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2", c341cbe82cf3de1 . fbb6958305bede8 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" }
add element inet cni_nft_portmap snat_sub4 { 10.88.0.5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub4-15f04f2f13e6, 10.88.0.5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub4-15f04f2f13e6, 10.88.0.6 . tcp . 70 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : snat_sub4-15f04f2f13e6, 10.88.0.6 . tcp . 90 comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2" : snat_sub4-15f04f2f13e6, 10.99.0.7 . tcp . 70 comment "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3" : snat_sub4-9d8797614eb1 }
add element inet cni_nft_portmap snat_sub6 { fd00::5 . tcp . 80 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub6-ef330fd8e3d4, fd00::5 . udp . 53 comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1" : snat_sub6-ef330fd8e3d4 }`;
/** B's ADD with C's mapping (port 7070) for its own address. */
const B_TAKES_7070 = {
  ...SPEC_C,
  containers: [{ family: 4 as const, address: "10.88.0.6", subnet: "10.88.0.0/24" }],
};

test("portmap nftables: a repeated ADD reads nothing and commits in one run, leaving one copy", async () => {
  const [host, b, reads, runs] = await attachedAndCounted();
  await b.setUp(A, SPEC_A); // dual stack, two mappings
  await b.setUp(B, specB("nftables")); // hostIP and a class of conditions
  await b.setUp(C, SPEC_C);
  assert.deepEqual(reads, []);
  assert.deepEqual(runs, ["run", "run", "run"]);
  assert.equal(await host.dump(), await currentDump());
  for (const [a, spec] of [
    [A, SPEC_A],
    [B, specB("nftables")],
    [C, SPEC_C],
  ] as const)
    assert.deepEqual(await b.check(a, spec), []);
});

test("portmap nftables: a repeated ADD whose key another attachment took over lists the table and takes it back", async () => {
  const [host, b, reads] = await attachedAndCounted();
  await b.setUp(B, B_TAKES_7070);
  reads.length = 0;
  await b.setUp(C, SPEC_C);
  assert.deepEqual(reads, ["listTable"]);
  // Port 7070 is C's again, with C's owner element (8911529e0e42a90 . 323ad11e19a7d17); B keeps
  // its masquerade element of it (10.88.0.6 . tcp . 70) and that one's owner element, for its DEL.
  assert.equal(elementLines(await host.dump()), TAKEN_BACK);
  assert.deepEqual(await b.check(C, SPEC_C), []);
  // B's DEL then leaves C's key (B's owner element of it went with the take-back).
  await b.remove(B);
  assert.deepEqual(await b.check(C, SPEC_C), []);
  assert.doesNotMatch(await host.dump(), /id: ctr2/);
});

test("portmap nftables: a repeated ADD after one killed before nft (a record, nothing in the table) writes everything", async () => {
  const [host, b, reads] = await attachedAndCounted();
  const D = { ...A, containerId: "ctr4" };
  const specD = { ...SPEC_C, mappings: [{ hostPort: 6060, containerPort: 60, protocol: "tcp" as const }] };
  await b.setUp(D, specD);
  const before = await host.dump();
  // As if D's first ADD had died after its record: its elements and owner elements never written.
  const d = host.records("portmap").read(nftOwnerHash(D));
  await b.remove(D);
  host.records("portmap").write(nftOwnerHash(D), d);
  reads.length = 0;
  await b.setUp(D, specD);
  assert.deepEqual(reads, ["listTable"]);
  assert.equal(await host.dump(), before);
  assert.deepEqual(await b.check(D, specD), []);
  await b.remove(D);
  assert.equal(await host.dump(), await currentDump());
});
