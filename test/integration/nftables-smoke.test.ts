import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { NFTables, concat, ifname, isNotFound } from "../../src/nftables/index.js";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";

const nets = new NetnsPool();
let ns: Netns;
before(async () => {
  await sweepStaleNamespaces();
  ns = await nets.create("nftsmoke");
});
after(() => nets.destroyAll());

test("a table with a chain, a set and a map round-trips through the kernel", async () => {
  const nft = new NFTables({ family: "inet", table: "smoke", netns: ns.path });
  const tx = nft.newTransaction();
  tx.add({ kind: "table" });
  tx.add({ kind: "chain", name: "pre", type: "nat", hook: "prerouting", priority: "dstnat - 10" });
  tx.add({ kind: "set", name: "s", type: "ipv4_addr" });
  tx.add({ kind: "map", name: "m", type: "ipv4_addr : ipv4_addr" });
  tx.add({
    kind: "rule",
    chain: "pre",
    rule: concat("iifname", ifname("eth0"), "ip saddr @s accept"),
    comment: "r",
  });
  tx.add({ kind: "element", set: "s", key: ["10.1.1.1"] });
  tx.add({ kind: "element", map: "m", key: ["10.1.1.1"], value: ["10.2.2.2"] });
  await nft.run(tx);
  assert.deepEqual(await nft.list("chains"), ["pre"]);
  assert.deepEqual(await nft.list("sets"), ["s"]);
  assert.deepEqual(await nft.list("maps"), ["m"]);
  const rules = await nft.listRules("pre", { text: true });
  assert.equal(rules.length, 1);
  assert.equal(rules[0]!.rule, 'iifname "eth0" ip saddr @s accept');
  assert.equal(rules[0]!.comment, "r");
  const del = nft.newTransaction().delete({ kind: "table" });
  await nft.run(del);
  await assert.rejects(nft.list("sets"), isNotFound);
});
