/**
 * deleteOwned (src/hoststate/nft_owners.ts) on the nftables fake: each key goes with its owner
 * element without a read; a key another owner took over is left alone; a key whose element a
 * flushed set lost leaves no owner element behind; a table without the owners set (a previous
 * layout) or no table is undefined. Literal dumps of the table after each case.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeHost } from "../../../src/hoststate/fake.js";
import { nftOwnerHash } from "../../../src/cni/attachment.js";
import { declareOwners, deleteOwned, ownerElement } from "../../../src/hoststate/nft_owners.js";
import type { Element, Interface } from "../../../src/nftables/index.js";

const X = nftOwnerHash({ network: "n", containerId: "x", ifname: "eth0" });
const Y = nftOwnerHash({ network: "n", containerId: "y", ifname: "eth0" });
const addr = (ip: string): Element => ({ kind: "element", set: "addrs", key: [ip] });

/** Table t: set addrs with .1 and .2 owned by X, .3 by Y, each with its owner element. */
async function table(owners = true): Promise<[FakeHost, Interface]> {
  const host = new FakeHost();
  const nft = host.nft("inet", "t");
  const tx = nft.newTransaction();
  tx.add({ kind: "table" });
  tx.add({ kind: "set", name: "addrs", type: "ipv4_addr" });
  if (owners) declareOwners(tx);
  for (const [ip, owner] of [
    ["10.0.0.1", X],
    ["10.0.0.2", X],
    ["10.0.0.3", Y],
  ] as const) {
    tx.add(addr(ip));
    if (owners) tx.add(ownerElement(addr(ip), owner));
  }
  await nft.run(tx);
  return [host, nft];
}

const HEAD = `add table inet t
add set inet t addrs { type ipv4_addr ; }
add set inet t owners { type ifname . ifname ; comment "owner tag . element tag, one per element (comment: owner)" ; }
`;
/** Owner tags: X 705e2d0cbe7672c, Y c3e6d6d5c227299; element tags: .1 1bbc3da5b6c0b40, .2 dd606f44a1018d2, .3 c6f56615e6fa947. */
const ALL = `${HEAD}add element inet t addrs { 10.0.0.1, 10.0.0.2, 10.0.0.3 }
add element inet t owners { 705e2d0cbe7672c . 1bbc3da5b6c0b40, 705e2d0cbe7672c . dd606f44a1018d2, c3e6d6d5c227299 . c6f56615e6fa947 }
`;
/** What is left of t once X's keys are gone: Y's. */
const ONLY_Y = `${HEAD}add element inet t addrs { 10.0.0.3 }
add element inet t owners { c3e6d6d5c227299 . c6f56615e6fa947 }
`;

/** X's DEL of the addresses `ips`: the addresses it reports as its own. */
async function deleteX(nft: Interface, ips: string[]): Promise<string[] | undefined> {
  return (await deleteOwned(nft, X, ips.map(addr)))?.map((e) => e.key[0]!);
}

test("deleteOwned: every key with its owner element", async () => {
  const [host, nft] = await table();
  assert.equal(await host.dump(), ALL);
  assert.deepEqual(await deleteX(nft, ["10.0.0.1", "10.0.0.2"]), ["10.0.0.1", "10.0.0.2"]);
  assert.equal(await host.dump(), ONLY_Y);
});

test("deleteOwned: a key another owner holds is skipped, the rest deleted", async () => {
  const [host, nft] = await table();
  assert.deepEqual(await deleteX(nft, ["10.0.0.3", "10.0.0.1", "10.0.0.2"]), ["10.0.0.1", "10.0.0.2"]);
  assert.equal(await host.dump(), ONLY_Y);
});

test("deleteOwned: after a flushed set, the owner's owner elements go too (the keys count as its own)", async () => {
  const [host, nft] = await table();
  await nft.run(nft.newTransaction().flush({ kind: "set", name: "addrs" }));
  assert.deepEqual(await deleteX(nft, ["10.0.0.1", "10.0.0.2"]), ["10.0.0.1", "10.0.0.2"]);
  // Y's owner element stays: Y's own DEL removes it.
  assert.equal(await host.dump(), `${HEAD}add element inet t owners { c3e6d6d5c227299 . c6f56615e6fa947 }\n`);
});

test("deleteOwned: one key flushed, one present, one another's: each handled as it is", async () => {
  const [host, nft] = await table();
  await nft.run(nft.newTransaction().delete(addr("10.0.0.2")));
  assert.deepEqual(await deleteX(nft, ["10.0.0.3", "10.0.0.2", "10.0.0.1"]), ["10.0.0.2", "10.0.0.1"]);
  assert.equal(await host.dump(), ONLY_Y);
});

test("deleteOwned: a key gone with its owner element is skipped", async () => {
  const [host, nft] = await table();
  await deleteX(nft, ["10.0.0.1"]);
  assert.deepEqual(await deleteX(nft, ["10.0.0.1", "10.0.0.2"]), ["10.0.0.2"]);
  assert.equal(await host.dump(), ONLY_Y);
});

test("deleteOwned: no owners set (a previous layout) or no table is undefined, and nothing changes", async () => {
  const [host, nft] = await table(false);
  const before = await host.dump();
  assert.equal(await deleteOwned(nft, X, [addr("10.0.0.1")]), undefined);
  assert.equal(await host.dump(), before);
  const empty = new FakeHost();
  assert.equal(await deleteOwned(empty.nft("inet", "t"), X, [addr("10.0.0.1")]), undefined);
  assert.equal(await empty.dump(), "");
});
