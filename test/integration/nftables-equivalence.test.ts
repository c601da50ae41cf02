/**
 * The fake against the kernel: the same transactions run on FakeNFTables and on NFTables (in a
 * throwaway namespace), and after every step both dumps must be equal, failures included (same
 * error code, same failing operation, nothing changed). Rule texts are written the way `nft list`
 * prints them, since the fake keeps rule text as written.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { FakeNFTables } from "../../src/nftables/fake.js";
import {
  NFTables,
  NftError,
  type Interface,
  type NftErrorCode,
  type Transaction,
} from "../../src/nftables/index.js";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";

const nets = new NetnsPool();
let ns: Netns;
before(async () => {
  await sweepStaleNamespaces();
  ns = await nets.create("nfteq");
});
after(() => nets.destroyAll());

/** Handle of the rule at a position of a chain, in the implementation the transaction is for. */
type HandleAt = (chain: string, index: number) => number;

interface Step {
  name: string;
  build: (tx: Transaction, handleAt: HandleAt) => unknown;
  /** Expected failure, with the index of the failing operation. */
  fails?: [NftErrorCode, number];
}

const addr = (i: number): string => `10.1.${i >> 8}.${i & 255}`;

const steps: Step[] = [
  {
    name: "table, base and regular chains, sets, maps and a counter",
    build: (tx) => {
      tx.add({ kind: "table", comment: "equivalence" });
      tx.add({
        kind: "chain",
        name: "input",
        type: "filter",
        hook: "input",
        priority: "filter",
        policy: "drop",
      });
      tx.add({ kind: "chain", name: "pre", type: "nat", hook: "prerouting", priority: "dstnat - 10" });
      tx.add({
        kind: "chain",
        name: "post",
        type: "nat",
        hook: "postrouting",
        priority: 100,
        comment: "snat",
      });
      tx.add({ kind: "chain", name: "sub", comment: "jumped to" });
      tx.add({ kind: "chain", name: "sub2" });
      tx.add({ kind: "chain", name: "spare" });
      tx.add({ kind: "set", name: "allowed", type: "ipv4_addr", comment: "sources" });
      tx.add({ kind: "set", name: "nets", type: "ipv4_addr", flags: ["interval"] });
      tx.add({ kind: "set", name: "pairs", type: "ipv4_addr . inet_service", size: 65535 });
      tx.add({ kind: "map", name: "svc", type: "ipv4_addr . inet_service : verdict" });
      tx.add({ kind: "map", name: "dnatmap", type: "ipv4_addr : ipv4_addr" });
      tx.add({ kind: "counter", name: "cnt", comment: "named" });
    },
  },
  {
    name: "rules in canonical form, with comments and references",
    build: (tx) => {
      tx.add({ kind: "rule", chain: "input", rule: "ct state established,related accept" });
      tx.add({ kind: "rule", chain: "input", rule: "ip saddr @allowed accept", comment: "allowed" });
      tx.add({ kind: "rule", chain: "input", rule: "ip daddr . tcp dport vmap @svc" });
      tx.add({ kind: "rule", chain: "input", rule: 'iifname "lo" counter name "cnt" accept' });
      tx.add({ kind: "rule", chain: "input", rule: "ip saddr @nets jump sub" });
      tx.add({ kind: "rule", chain: "sub", rule: "tcp dport 22 accept" });
      tx.add({ kind: "rule", chain: "sub", rule: "ip saddr . tcp dport @pairs goto sub2" });
      tx.add({ kind: "rule", chain: "sub2", rule: "udp dport 53 accept" });
      tx.add({ kind: "rule", chain: "pre", rule: "dnat ip to ip daddr map @dnatmap" });
      tx.add({ kind: "rule", chain: "post", rule: 'oifname "eth0" masquerade', comment: "masq" });
    },
  },
  {
    name: "elements: a few hundred, prefixes, concatenations, verdicts",
    build: (tx) => {
      for (let i = 0; i < 300; i++) tx.add({ kind: "element", set: "allowed", key: [addr(i)] });
      tx.add({ kind: "element", set: "nets", key: ["10.2.0.0/16"] });
      tx.add({ kind: "element", set: "nets", key: ["192.168.1.0/24"] });
      tx.add({ kind: "element", set: "pairs", key: ["10.0.0.1", "80"] });
      tx.add({ kind: "element", set: "pairs", key: ["10.0.0.2", "443"] });
      tx.add({ kind: "element", map: "svc", key: ["10.0.0.1", "80"], value: ["accept"] });
      tx.add({ kind: "element", map: "svc", key: ["10.0.0.1", "81"], value: ["jump sub"] });
      tx.add({ kind: "element", map: "svc", key: ["10.0.0.1", "82"], value: ["goto sub2"] });
      tx.add({ kind: "element", map: "dnatmap", key: ["10.9.0.1"], value: ["10.0.0.1"] });
    },
  },
  {
    name: "adding what exists is a no-op (same map value too)",
    build: (tx) => {
      tx.add({ kind: "table" });
      tx.add({ kind: "chain", name: "sub" });
      tx.add({ kind: "set", name: "allowed", type: "ipv4_addr" });
      tx.add({ kind: "element", set: "allowed", key: [addr(5)] });
      tx.add({ kind: "element", map: "svc", key: ["10.0.0.1", "80"], value: ["accept"] });
      tx.add({ kind: "counter", name: "cnt" });
    },
  },
  {
    name: "rule positions: index and handle, add and insert, replace and delete",
    build: (tx, h) => {
      tx.insert({ kind: "rule", chain: "sub", rule: "tcp dport 1 drop" });
      tx.add({ kind: "rule", chain: "sub", index: 0, rule: "tcp dport 2 drop" });
      tx.insert({ kind: "rule", chain: "sub", index: 2, rule: "tcp dport 3 drop" });
      tx.add({ kind: "rule", chain: "sub", handle: h("sub", 1), rule: "tcp dport 4 drop", comment: "after" });
      tx.insert({ kind: "rule", chain: "sub", handle: h("sub", 0), rule: "tcp dport 5 drop" });
      tx.replace({ kind: "rule", chain: "sub2", handle: h("sub2", 0), rule: "udp dport 5353 accept" });
      tx.delete({ kind: "rule", chain: "input", handle: h("input", 0), rule: "" });
      tx.add({ kind: "rule", chain: "input", index: 0, rule: "meta l4proto icmp accept" });
    },
  },
  {
    name: "positions of rules deleted in the same transaction still count",
    build: (tx, h) => {
      tx.delete({ kind: "rule", chain: "sub", handle: h("sub", 0), rule: "" });
      tx.add({ kind: "rule", chain: "sub", index: 0, rule: "tcp dport 7 drop" });
      tx.insert({ kind: "rule", chain: "sub", index: 1, rule: "tcp dport 8 drop" });
      tx.delete({ kind: "rule", chain: "sub", handle: h("sub", 3), rule: "" });
      tx.insert({ kind: "rule", chain: "sub", handle: h("sub", 3), rule: "tcp dport 9 drop" });
    },
  },
  {
    name: "a failing transaction in the middle changes nothing",
    build: (tx) => {
      tx.add({ kind: "chain", name: "never" });
      tx.add({ kind: "rule", chain: "sub", rule: "tcp dport 6 drop" });
      tx.delete({ kind: "element", set: "allowed", key: [addr(0)] });
      tx.add({ kind: "element", set: "allowed", key: ["10.8.8.8"] });
      tx.delete({ kind: "element", set: "allowed", key: ["10.7.7.7"] });
      tx.flush({ kind: "map", name: "dnatmap" });
    },
    fails: ["ENOENT", 4],
  },
  {
    name: "create of an existing chain fails",
    build: (tx) => tx.add({ kind: "chain", name: "x1" }).create({ kind: "chain", name: "sub2" }),
    fails: ["EEXIST", 1],
  },
  {
    name: "a map element with another value fails",
    build: (tx) => tx.add({ kind: "element", map: "svc", key: ["10.0.0.1", "80"], value: ["drop"] }),
    fails: ["EEXIST", 0],
  },
  {
    name: "a chain that rules jump to cannot be deleted",
    build: (tx) => tx.flush({ kind: "chain", name: "sub2" }).delete({ kind: "chain", name: "sub2" }),
    fails: ["EBUSY", 1],
  },
  {
    name: "a set a rule uses cannot be deleted",
    build: (tx) => tx.delete({ kind: "set", name: "pairs" }),
    fails: ["EBUSY", 0],
  },
  {
    name: "a rule handle that does not exist",
    build: (tx) => tx.delete({ kind: "rule", chain: "sub", handle: 99999, rule: "" }),
    fails: ["ENOENT", 0],
  },
  {
    name: "element churn: delete some, add others, destroy missing and present ones",
    build: (tx) => {
      for (let i = 0; i < 100; i++) tx.delete({ kind: "element", set: "allowed", key: [addr(i)] });
      for (let i = 300; i < 400; i++) tx.add({ kind: "element", set: "allowed", key: [addr(i)] });
      tx.destroy({ kind: "element", set: "allowed", key: ["10.6.6.6"] });
      tx.destroy({ kind: "element", set: "allowed", key: [addr(150)] });
      tx.delete({ kind: "element", map: "svc", key: ["10.0.0.1", "81"] });
      tx.destroy({ kind: "element", map: "dnatmap", key: ["10.9.0.1"], value: ["10.0.0.1"] });
      tx.add({ kind: "element", map: "dnatmap", key: ["10.9.0.2"], value: ["10.0.0.2"] });
    },
  },
  {
    name: "destroy of missing objects, delete of an unused chain",
    build: (tx) => {
      tx.destroy({ kind: "chain", name: "absent" });
      tx.destroy({ kind: "set", name: "absent", type: "ipv4_addr" });
      tx.destroy({ kind: "counter", name: "absent" });
      tx.delete({ kind: "chain", name: "spare" });
    },
  },
  {
    name: "flush a chain, a set and a map",
    build: (tx) => {
      tx.flush({ kind: "chain", name: "post" });
      tx.flush({ kind: "set", name: "nets" });
      tx.flush({ kind: "map", name: "dnatmap" });
    },
  },
  {
    name: "flush table removes rules only",
    build: (tx) => tx.flush({ kind: "table" }),
  },
  {
    name: "now unused, chains, sets and the counter can go",
    build: (tx) => {
      tx.delete({ kind: "element", map: "svc", key: ["10.0.0.1", "82"] });
      tx.delete({ kind: "chain", name: "sub2" });
      tx.delete({ kind: "set", name: "pairs" });
      tx.destroy({ kind: "map", name: "dnatmap", type: "ipv4_addr : ipv4_addr" });
      tx.delete({ kind: "counter", name: "cnt" });
      tx.add({ kind: "rule", chain: "sub", rule: "ip saddr @allowed accept" });
    },
  },
  {
    name: "the base chain policy can change",
    build: (tx) =>
      tx.add({ kind: "chain", name: "input", type: "filter", hook: "input", priority: 0, policy: "accept" }),
  },
];

async function outcome(nft: Interface, step: Step): Promise<NftError | undefined> {
  const rules = new Map<string, number[]>();
  for (const chain of await nft.list("chains").catch(() => []))
    rules.set(
      chain,
      (await nft.listRules(chain)).map((r) => r.handle ?? -1),
    );
  const handleAt: HandleAt = (chain, index) => {
    const h = rules.get(chain)?.[index];
    if (h === undefined) throw new Error(`no rule ${index} in ${chain}`);
    return h;
  };
  const tx = nft.newTransaction();
  step.build(tx, handleAt);
  try {
    await nft.run(tx);
    return undefined;
  } catch (e) {
    if (e instanceof NftError) return e;
    throw e;
  }
}

test("the fake and the kernel agree on every step", async (t) => {
  const real = new NFTables({ family: "inet", table: "equiv", netns: ns.path });
  const fake = new FakeNFTables({ family: "inet", table: "equiv" });
  for (const step of steps) {
    await t.test(step.name, async () => {
      const before = await fake.dump().catch(() => "");
      const [realErr, fakeErr] = [await outcome(real, step), await outcome(fake, step)];
      if (step.fails) {
        const [code, index] = step.fails;
        assert.equal(realErr?.code, code, `kernel: ${realErr?.message ?? "no error"}`);
        assert.equal(realErr.operationIndex, index, realErr.message);
        assert.equal(fakeErr?.code, code, `fake: ${fakeErr?.message ?? "no error"}`);
        assert.equal(fakeErr.operationIndex, index, fakeErr.message);
        assert.equal(await fake.dump(), before, "the fake changed on failure");
      } else {
        assert.equal(realErr, undefined, `kernel: ${realErr?.message}`);
        assert.equal(fakeErr, undefined, `fake: ${fakeErr?.message}`);
      }
      assert.equal(await fake.dump(), await real.dump());
      for (const chain of await real.list("chains")) {
        const [r, f] = [
          await real.listRules(chain, { text: true }),
          await fake.listRules(chain, { text: true }),
        ];
        assert.deepEqual(
          f.map((x) => [x.rule, x.comment]),
          r.map((x) => [x.rule, x.comment]),
          `rules of ${chain}`,
        );
      }
      for (const kind of ["set", "map"] as const)
        for (const name of await real.list(`${kind}s`)) {
          const sorted = (es: Awaited<ReturnType<Interface["listElements"]>>): string[] =>
            es.map((e) => `${e.key.join(" . ")} : ${(e.value ?? []).join(" . ")}`).sort();
          assert.deepEqual(
            sorted(await fake.listElements(kind, name)),
            sorted(await real.listElements(kind, name)),
          );
        }
    });
  }

  await t.test("the kernel's dump loads into a new fake, and the fake's dump into the kernel", async () => {
    const dump = await real.dump();
    const copy = new FakeNFTables({ family: "inet", table: "equiv" });
    copy.load(dump);
    assert.equal(await copy.dump(), dump);
    await real.run(real.newTransaction().delete({ kind: "table" }));
    await ns.sh(["nft", "-f", "-"], await fake.dump());
    assert.equal(await real.dump(), dump);
  });

  await t.test("both lose the table on delete", async () => {
    for (const nft of [real, fake] as Interface[]) {
      await nft.run(nft.newTransaction().delete({ kind: "table" }));
      await assert.rejects(nft.dump(), (e: unknown) => e instanceof NftError && e.code === "ENOENT");
      await assert.rejects(
        nft.run(nft.newTransaction().add({ kind: "chain", name: "c" })),
        (e: unknown) => e instanceof NftError && e.code === "ENOENT" && e.operationIndex === 0,
      );
    }
  });
});

test("fake and kernel: several tables in one atomic run, tables listed, elements looked up by key", async () => {
  const real = new NFTables({ family: "inet", table: "equiv_a", netns: ns.path });
  const fake = new FakeNFTables({ family: "inet", table: "equiv_a" });
  for (const nft of [real, fake] as Interface[]) {
    const b = nft.forTable("ip", "equiv_b");
    const ta = nft.newTransaction();
    ta.add({ kind: "table" });
    ta.add({ kind: "map", name: "m", type: "inet_proto . inet_service : ipv4_addr . inet_service" });
    ta.add({ kind: "set", name: "s", type: "ipv4_addr . inet_proto . inet_service", flags: ["interval"] });
    ta.add({
      kind: "element",
      map: "m",
      key: ["tcp", "8080"],
      value: ["10.0.0.5", "80"],
      comment: "own, a: b",
    });
    ta.add({ kind: "element", map: "m", key: ["udp", "53"], value: ["10.0.0.6", "53"] });
    ta.add({ kind: "element", set: "s", key: ["10.0.0.0/24", "tcp", "80"], comment: "x" });
    const tb = b.newTransaction();
    tb.add({ kind: "table" });
    tb.add({ kind: "chain", name: "c" });
    await nft.runAll([ta, tb]);
    // One failing transaction keeps the other from applying too.
    const bad = nft.newTransaction().add({ kind: "chain", name: "d" });
    const missing = b.newTransaction().add({ kind: "rule", chain: "nope", rule: "accept" });
    await assert.rejects(
      nft.runAll([bad, missing]),
      (e: unknown) => e instanceof NftError && e.code === "ENOENT",
    );
    assert.deepEqual(await nft.list("chains"), []);
    const tables = (await nft.listTables()).filter((t) => t.name.startsWith("equiv_"));
    assert.deepEqual(tables, [
      { family: "inet", name: "equiv_a" },
      { family: "ip", name: "equiv_b" },
    ]);
    assert.deepEqual(await nft.listTables("ip"), [{ family: "ip", name: "equiv_b" }]);
    const got = await nft.getElements([
      { kind: "element", map: "m", key: ["tcp", "8080"] },
      { kind: "element", map: "m", key: ["udp", "53"] },
      { kind: "element", set: "s", key: ["10.0.0.0/24", "tcp", "80"] },
    ]);
    assert.deepEqual(
      got.map((e) => [e.map ?? e.set, e.key.join(" . "), (e.value ?? []).join(" . "), e.comment]).sort(),
      [
        ["m", "tcp . 8080", "10.0.0.5 . 80", "own, a: b"],
        ["m", "udp . 53", "10.0.0.6 . 53", undefined],
        ["s", "10.0.0.0/24 . tcp . 80", "", "x"],
      ],
      `getElements on ${nft instanceof FakeNFTables ? "the fake" : "the kernel"}`,
    );
    await assert.rejects(
      nft.getElements([{ kind: "element", map: "m", key: ["tcp", "9999"] }]),
      (e: unknown) => e instanceof NftError && e.code === "ENOENT",
    );
    const state = await nft.listTable();
    assert.deepEqual(state.sets.map((s) => s.name).sort(), ["m", "s"]);
    assert.equal(state.elements.get("m")?.length, 2);
    assert.ok((await nft.features()).version.length > 0);
    await nft.runAll([
      nft.newTransaction().delete({ kind: "table" }),
      b.newTransaction().delete({ kind: "table" }),
    ]);
  }
});
