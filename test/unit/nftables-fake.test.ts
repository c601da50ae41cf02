import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeNFTables } from "../../src/nftables/fake.js";
import {
  NftError,
  ValidationError,
  isAlreadyExists,
  isNotFound,
  type NftErrorCode,
  type Transaction,
} from "../../src/nftables/index.js";

const isInvalid = (e: unknown): boolean => e instanceof NftError && e.code === "EINVAL";

/** A fake with table `inet t`: base chain `in`, chains `a` and `b`, set `s`, verdict map `vm`, counter `cn`. */
async function setup(): Promise<FakeNFTables> {
  const f = new FakeNFTables({ family: "inet", table: "t" });
  const tx = f.newTransaction();
  tx.add({ kind: "table" });
  tx.add({ kind: "chain", name: "in", type: "filter", hook: "input", priority: "filter" });
  tx.add({ kind: "chain", name: "a" });
  tx.add({ kind: "chain", name: "b" });
  tx.add({ kind: "set", name: "s", type: "ipv4_addr" });
  tx.add({ kind: "map", name: "vm", type: "ipv4_addr : verdict" });
  tx.add({ kind: "counter", name: "cn" });
  tx.add({ kind: "rule", chain: "in", rule: "ip saddr @s jump a" });
  tx.add({ kind: "rule", chain: "a", rule: "accept" });
  tx.add({ kind: "element", set: "s", key: ["10.0.0.1"] });
  tx.add({ kind: "element", map: "vm", key: ["10.0.0.2"], value: ["drop"] });
  await f.run(tx);
  return f;
}

interface Case {
  name: string;
  build: (tx: Transaction) => unknown;
  /** Expected failure; the transaction must then change nothing. */
  code?: NftErrorCode;
  /** Index of the failing operation. */
  failing?: number;
  /** Checks after success. */
  after?: (f: FakeNFTables) => Promise<void>;
}

const rules = async (f: FakeNFTables, chain: string): Promise<string[]> =>
  (await f.listRules(chain, { text: true })).map((r) => r.rule);
const keys = async (f: FakeNFTables, kind: "set" | "map", name: string): Promise<string[]> =>
  (await f.listElements(kind, name)).map((e) => e.key.join(" . ")).sort();

const cases: Case[] = [
  // tables
  { name: "add of the existing table is a no-op", build: (tx) => tx.add({ kind: "table" }) },
  { name: "create of the existing table fails", build: (tx) => tx.create({ kind: "table" }), code: "EEXIST" },
  {
    name: "delete table removes everything",
    build: (tx) => tx.delete({ kind: "table" }),
    after: async (f) => assert.rejects(f.list("chains"), isNotFound),
  },
  {
    name: "destroy table then use it fails",
    build: (tx) => tx.destroy({ kind: "table" }).add({ kind: "chain", name: "x" }),
    code: "ENOENT",
    failing: 1,
  },
  {
    name: "flush table removes rules, keeps chains, sets and elements",
    build: (tx) => tx.flush({ kind: "table" }),
    after: async (f) => {
      assert.deepEqual(await f.list("chains"), ["a", "b", "in"]);
      assert.deepEqual(await rules(f, "in"), []);
      assert.deepEqual(await keys(f, "set", "s"), ["10.0.0.1"]);
    },
  },
  // chains
  { name: "add of an existing chain is a no-op", build: (tx) => tx.add({ kind: "chain", name: "a" }) },
  {
    name: "create of an existing chain",
    build: (tx) => tx.create({ kind: "chain", name: "a" }),
    code: "EEXIST",
  },
  {
    name: "delete of a missing chain",
    build: (tx) => tx.delete({ kind: "chain", name: "zz" }),
    code: "ENOENT",
  },
  { name: "destroy of a missing chain", build: (tx) => tx.destroy({ kind: "chain", name: "zz" }) },
  {
    name: "delete of a chain with rules",
    build: (tx) => tx.delete({ kind: "chain", name: "a" }),
    code: "EBUSY",
  },
  {
    name: "delete of a chain that a rule jumps to, even when flushed",
    build: (tx) => tx.flush({ kind: "chain", name: "a" }).delete({ kind: "chain", name: "a" }),
    code: "EBUSY",
    failing: 1,
  },
  {
    name: "delete of a chain a map element jumps to",
    build: (tx) =>
      tx
        .add({ kind: "element", map: "vm", key: ["10.0.0.3"], value: ["goto b"] })
        .delete({ kind: "chain", name: "b" }),
    code: "EBUSY",
    failing: 1,
  },
  {
    name: "delete of an unused chain",
    build: (tx) => tx.delete({ kind: "chain", name: "b" }),
    after: async (f) => assert.deepEqual(await f.list("chains"), ["a", "in"]),
  },
  {
    name: "flush chain then delete it when nothing jumps there",
    build: (tx) =>
      tx
        .add({ kind: "rule", chain: "b", rule: "drop" })
        .flush({ kind: "chain", name: "b" })
        .delete({ kind: "chain", name: "b" }),
  },
  {
    name: "add of a base chain updates its policy",
    build: (tx) =>
      tx.add({ kind: "chain", name: "in", type: "filter", hook: "input", priority: 0, policy: "drop" }),
    after: async (f) => assert.match(await f.dump(), /chain inet t in \{ .* policy drop ; \}/),
  },
  {
    name: "add of a base chain with another priority",
    build: (tx) => tx.add({ kind: "chain", name: "in", type: "filter", hook: "input", priority: 10 }),
    code: "ENOTSUP",
  },
  {
    name: "add of a regular chain as a base chain",
    build: (tx) => tx.add({ kind: "chain", name: "a", type: "filter", hook: "input", priority: 0 }),
    code: "EEXIST",
  },
  {
    name: "a chain in a missing table",
    build: (tx) => tx.delete({ kind: "table" }).add({ kind: "chain", name: "x" }),
    code: "ENOENT",
    failing: 1,
  },
  // rules
  {
    name: "jump to a missing chain",
    build: (tx) => tx.add({ kind: "rule", chain: "b", rule: "jump zz" }),
    code: "ENOENT",
  },
  {
    name: "goto in an anonymous verdict map",
    build: (tx) => tx.add({ kind: "rule", chain: "b", rule: "ip daddr vmap { 10.0.0.1 : goto zz }" }),
    code: "ENOENT",
  },
  {
    name: "a missing set",
    build: (tx) => tx.add({ kind: "rule", chain: "b", rule: "ip saddr @zz drop" }),
    code: "ENOENT",
  },
  {
    name: "a missing counter",
    build: (tx) => tx.add({ kind: "rule", chain: "b", rule: 'counter name "zz"' }),
    code: "ENOENT",
  },
  {
    name: "a rule in a missing chain",
    build: (tx) => tx.add({ kind: "rule", chain: "zz", rule: "accept" }),
    code: "ENOENT",
  },
  {
    name: "words in strings are not references",
    build: (tx) => tx.add({ kind: "rule", chain: "b", rule: 'meta iifname "@x" accept' }),
  },
  {
    name: "a chain made earlier in the transaction can be jumped to",
    build: (tx) => tx.add({ kind: "chain", name: "n" }).add({ kind: "rule", chain: "b", rule: "goto n" }),
  },
  {
    name: "delete of a missing rule handle",
    build: (tx) => tx.delete({ kind: "rule", chain: "a", handle: 999, rule: "" }),
    code: "ENOENT",
  },
  {
    name: "destroy of a missing rule handle",
    build: (tx) => tx.destroy({ kind: "rule", chain: "a", handle: 999, rule: "" }),
  },
  {
    name: "replace of a missing rule handle",
    build: (tx) => tx.replace({ kind: "rule", chain: "a", handle: 999, rule: "drop" }),
    code: "ENOENT",
  },
  {
    name: "add at an index past the end",
    build: (tx) => tx.add({ kind: "rule", chain: "a", index: 5, rule: "drop" }),
    code: "ENOENT",
  },
  {
    name: "positions by index resolve against the transaction's own rules",
    build: (tx) =>
      tx
        .add({ kind: "rule", chain: "b", rule: "accept" })
        .add({ kind: "rule", chain: "b", rule: "drop" })
        .insert({ kind: "rule", chain: "b", index: 1, rule: "reject" })
        .add({ kind: "rule", chain: "b", index: 0, rule: "counter" })
        .insert({ kind: "rule", chain: "b", rule: "return" }),
    after: async (f) =>
      assert.deepEqual(await rules(f, "b"), ["return", "accept", "counter", "reject", "drop"]),
  },
  // sets and maps
  { name: "add of an existing set", build: (tx) => tx.add({ kind: "set", name: "s", type: "ipv4_addr" }) },
  {
    name: "add of an existing set with another type",
    build: (tx) => tx.add({ kind: "set", name: "s", type: "ipv6_addr" }),
    code: "EEXIST",
  },
  {
    name: "a map named like a set",
    build: (tx) => tx.add({ kind: "map", name: "s", type: "ipv4_addr : verdict" }),
    code: "EEXIST",
  },
  {
    name: "create of an existing set",
    build: (tx) => tx.create({ kind: "set", name: "s", type: "ipv4_addr" }),
    code: "EEXIST",
  },
  {
    name: "delete of a set a rule uses",
    build: (tx) => tx.delete({ kind: "set", name: "s" }),
    code: "EBUSY",
  },
  { name: "delete of a missing map", build: (tx) => tx.delete({ kind: "map", name: "zz" }), code: "ENOENT" },
  {
    name: "flush of a set",
    build: (tx) => tx.flush({ kind: "set", name: "s" }),
    after: async (f) => assert.deepEqual(await keys(f, "set", "s"), []),
  },
  {
    name: "delete of an unused map",
    build: (tx) => tx.delete({ kind: "map", name: "vm" }),
    after: async (f) => assert.deepEqual(await f.list("maps"), []),
  },
  // elements
  {
    name: "add of an existing element",
    build: (tx) => tx.add({ kind: "element", set: "s", key: ["10.0.0.1"] }),
  },
  {
    name: "create of an existing element",
    build: (tx) => tx.create({ kind: "element", set: "s", key: ["10.0.0.1"] }),
    code: "EEXIST",
  },
  {
    name: "add of a map element with the same value",
    build: (tx) => tx.add({ kind: "element", map: "vm", key: ["10.0.0.2"], value: ["drop"] }),
  },
  {
    name: "add of a map element with another value",
    build: (tx) => tx.add({ kind: "element", map: "vm", key: ["10.0.0.2"], value: ["accept"] }),
    code: "EEXIST",
  },
  {
    name: "a map element jumping to a missing chain",
    build: (tx) => tx.add({ kind: "element", map: "vm", key: ["10.0.0.9"], value: ["jump zz"] }),
    code: "ENOENT",
  },
  {
    name: "delete of a missing element, after good ones",
    build: (tx) =>
      tx
        .add({ kind: "element", set: "s", key: ["10.0.0.5"] })
        .delete({ kind: "element", set: "s", key: ["10.0.0.1"] })
        .delete({ kind: "element", set: "s", key: ["10.9.9.9"] }),
    code: "ENOENT",
    failing: 2,
  },
  {
    name: "destroy of a missing element",
    build: (tx) => tx.destroy({ kind: "element", set: "s", key: ["10.9.9.9"] }),
  },
  {
    name: "an element of a missing set",
    build: (tx) => tx.add({ kind: "element", set: "zz", key: ["1.1.1.1"] }),
    code: "ENOENT",
  },
  {
    name: "an element timeout without the timeout flag",
    build: (tx) => tx.add({ kind: "element", set: "s", key: ["1.1.1.1"], timeout: 10 }),
    code: "EINVAL",
  },
  // counters
  {
    name: "delete of a counter a rule uses",
    build: (tx) =>
      tx.add({ kind: "rule", chain: "b", rule: 'counter name "cn"' }).delete({ kind: "counter", name: "cn" }),
    code: "EBUSY",
    failing: 1,
  },
  {
    name: "reset of a missing counter",
    build: (tx) => tx.reset({ kind: "counter", name: "zz" }),
    code: "ENOENT",
  },
  {
    name: "create of an existing counter",
    build: (tx) => tx.create({ kind: "counter", name: "cn" }),
    code: "EEXIST",
  },
  // flowtables (the fake has them even where the kernel does not)
  {
    name: "flowtable used by a rule cannot be deleted",
    build: (tx) =>
      tx
        .add({ kind: "flowtable", name: "ft" })
        .add({ kind: "rule", chain: "b", rule: "flow add @ft" })
        .delete({ kind: "flowtable", name: "ft" }),
    code: "EBUSY",
    failing: 2,
  },
];

for (const c of cases) {
  test(`fake: ${c.name}`, async () => {
    const f = await setup();
    const before = await f.dump();
    const tx = f.newTransaction();
    c.build(tx);
    // check never changes anything, and fails exactly as run does
    const checked = await f.check(tx).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.equal(await f.dump(), before);
    if (c.code) {
      assert.ok(checked instanceof NftError, "check must fail too");
      await assert.rejects(f.run(tx), (e: unknown) => {
        assert.ok(e instanceof NftError);
        assert.equal(e.code, c.code, e.message);
        assert.equal(e.operationIndex, c.failing ?? 0);
        assert.equal(e.operation, tx.operations[c.failing ?? 0]);
        return true;
      });
      assert.equal(await f.dump(), before, "a failed transaction must change nothing");
    } else {
      assert.equal(checked, undefined);
      await f.run(tx);
      await c.after?.(f);
    }
  });
}

test("fake: constructor validates like NFTables", () => {
  assert.throws(() => new FakeNFTables({ family: "inet", table: "bad name" }), ValidationError);
  assert.throws(() => new FakeNFTables({ family: "inet", table: "counter" }), ValidationError);
  assert.throws(() => new FakeNFTables({ family: "nope" as "inet", table: "t" }), ValidationError);
});

test("fake: invalid operations fail before anything applies", async () => {
  const f = await setup();
  const tx = f.newTransaction().add({ kind: "chain", name: "ok" }).add({ kind: "chain", name: "bad;name" });
  await assert.rejects(
    f.run(tx),
    (e: unknown) => e instanceof NftError && e.code === "EINVAL" && e.operationIndex === 1,
  );
  assert.deepEqual(await f.list("chains"), ["a", "b", "in"]);
});

test("fake: listing a missing table, chain or set fails with ENOENT", async () => {
  const f = new FakeNFTables({ family: "ip", table: "t" });
  await assert.rejects(f.list("chains"), isNotFound);
  await assert.rejects(f.dump(), isNotFound);
  await assert.rejects(f.listCounters(), isNotFound);
  const g = await setup();
  await assert.rejects(g.listRules("zz"), isNotFound);
  await assert.rejects(g.listElements("set", "vm"), isNotFound);
  await assert.rejects(g.run(g.newTransaction().create({ kind: "table" })), isAlreadyExists);
});

test("fake: handles come from one counter per table and survive replace", async () => {
  const f = await setup();
  // setup made 3 chains, a set, a map, a counter (handles 1-6) and 2 rules (7, 8)
  assert.deepEqual(
    (await f.listRules("in")).map((r) => r.handle),
    [7],
  );
  assert.deepEqual(
    (await f.listRules("a")).map((r) => r.handle),
    [8],
  );
  await f.run(
    f.newTransaction().add({ kind: "chain", name: "c" }).add({ kind: "rule", chain: "a", rule: "drop" }),
  );
  const a = await f.listRules("a");
  assert.deepEqual(
    a.map((r) => r.handle),
    [8, 10],
  );
  await f.run(
    f.newTransaction().replace({ kind: "rule", chain: "a", handle: 8, rule: "counter", comment: "c" }),
  );
  assert.deepEqual(await f.listRules("a", { text: true }), [
    { kind: "rule", chain: "a", rule: "counter", handle: 8, comment: "c" },
    { kind: "rule", chain: "a", rule: "drop", handle: 10 },
  ]);
  // positions by handle: add after, insert before
  await f.run(
    f
      .newTransaction()
      .add({ kind: "rule", chain: "a", handle: 8, rule: "accept" })
      .insert({ kind: "rule", chain: "a", handle: 8, rule: "return" }),
  );
  assert.deepEqual(await rules(f, "a"), ["return", "counter", "accept", "drop"]);
  await f.run(f.newTransaction().delete({ kind: "rule", chain: "a", handle: 8, rule: "" }));
  assert.deepEqual(await rules(f, "a"), ["return", "accept", "drop"]);
});

test("fake: rules deleted earlier in a transaction still count as positions, as in nft", async () => {
  const f = await setup();
  const tx = f.newTransaction();
  for (const rule of ["tcp dport 1 drop", "tcp dport 2 drop", "tcp dport 3 drop"])
    tx.add({ kind: "rule", chain: "b", rule });
  await f.run(tx);
  const [h1, h2] = (await f.listRules("b")).map((r) => r.handle!);
  await f.run(
    f
      .newTransaction()
      .delete({ kind: "rule", chain: "b", handle: h1!, rule: "" })
      .add({ kind: "rule", chain: "b", index: 0, rule: "tcp dport 10 drop" })
      .insert({ kind: "rule", chain: "b", index: 1, rule: "tcp dport 11 drop" }),
  );
  assert.deepEqual(await rules(f, "b"), [
    "tcp dport 11 drop",
    "tcp dport 10 drop",
    "tcp dport 2 drop",
    "tcp dport 3 drop",
  ]);
  await f.run(
    f
      .newTransaction()
      .delete({ kind: "rule", chain: "b", handle: h2!, rule: "" })
      .insert({ kind: "rule", chain: "b", handle: h2!, rule: "tcp dport 12 drop" }),
  );
  assert.deepEqual(await rules(f, "b"), [
    "tcp dport 11 drop",
    "tcp dport 10 drop",
    "tcp dport 12 drop",
    "tcp dport 3 drop",
  ]);
  const [, , h12] = (await f.listRules("b")).map((r) => r.handle!);
  for (const second of ["replace", "delete"] as const) {
    const tx2 = f.newTransaction().delete({ kind: "rule", chain: "b", handle: h12!, rule: "" });
    tx2[second]({ kind: "rule", chain: "b", handle: h12!, rule: "drop" });
    await assert.rejects(f.run(tx2), (e: unknown) => isNotFound(e) && (e as NftError).operationIndex === 1);
  }
  // a deleted rule no longer uses what it referred to
  await f.run(
    f
      .newTransaction()
      .delete({ kind: "rule", chain: "in", handle: 7, rule: "" })
      .delete({ kind: "rule", chain: "a", handle: 8, rule: "" })
      .delete({ kind: "chain", name: "a" })
      .delete({ kind: "set", name: "s" }),
  );
  assert.deepEqual(await f.list("chains"), ["b", "in"]);
});

test("fake: element keys and values are listed without quotes and keyed by value", async () => {
  const f = new FakeNFTables({ family: "inet", table: "t" });
  const tx = f.newTransaction();
  tx.add({ kind: "table" });
  tx.add({ kind: "map", name: "m", type: "ifname . ipv4_addr : ifname", counter: true });
  tx.add({ kind: "element", map: "m", key: ['"eth0"', "10.0.0.1"], value: ['"veth1"'], comment: "c" });
  tx.add({ kind: "element", map: "m", key: ["eth0", "10.0.0.1"], value: ["veth1"] });
  await f.run(tx);
  assert.deepEqual(await f.listElements("map", "m"), [
    {
      kind: "element",
      map: "m",
      key: ["eth0", "10.0.0.1"],
      value: ["veth1"],
      comment: "c",
      counter: true,
      packets: 0,
      bytes: 0,
    },
  ]);
  await f.run(f.newTransaction().delete({ kind: "element", map: "m", key: ['"eth0"', "10.0.0.1"] }));
  assert.deepEqual(await f.listElements("map", "m"), []);
  // a string that is not a bare word keeps its quotes, as the real listing writes it
  await f.run(
    f.newTransaction().add({ kind: "element", map: "m", key: ['"a b"', "10.0.0.1"], value: ['"c d"'] }),
  );
  const [e] = await f.listElements("map", "m");
  assert.deepEqual([e?.key, e?.value], [['"a b"', "10.0.0.1"], ['"c d"']]);
  const g = new FakeNFTables({ family: "inet", table: "t" });
  g.load(await f.dump());
  assert.equal(await g.dump(), await f.dump());
});

test("fake: 50,000 elements are added, listed and deleted quickly", async () => {
  const f = new FakeNFTables({ family: "ip", table: "big" });
  const start = Date.now();
  const tx = f.newTransaction().add({ kind: "table" }).add({ kind: "set", name: "s", type: "ipv4_addr" });
  const addr = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  for (let i = 0; i < 50_000; i++) tx.add({ kind: "element", set: "s", key: [addr(i)] });
  await f.run(tx);
  // small transactions on a big set stay cheap
  for (let i = 0; i < 200; i++)
    await f.run(f.newTransaction().delete({ kind: "element", set: "s", key: [addr(i)] }));
  assert.equal((await f.listElements("set", "s")).length, 49_800);
  assert.ok(Date.now() - start < 5000, `took ${Date.now() - start} ms`);
});

test("fake: load reads back what dump writes", async () => {
  const f = await setup();
  const tx = f.newTransaction();
  tx.add({ kind: "table", comment: "ignored on an existing table" });
  tx.add({
    kind: "chain",
    name: "nat",
    type: "nat",
    hook: "prerouting",
    priority: "dstnat - 10",
    comment: "c",
  });
  tx.add({ kind: "chain", name: "dev", comment: "d" });
  tx.add({
    kind: "set",
    name: "ts",
    type: "ipv4_addr . inet_service",
    flags: ["timeout", "interval"],
    timeout: 60,
  });
  tx.add({
    kind: "set",
    name: "t2",
    typeof: "ip saddr",
    size: 100,
    policy: "memory",
    counter: true,
    comment: "x",
  });
  tx.add({ kind: "map", name: "nm", type: "ipv4_addr : ipv4_addr . inet_service", gcInterval: 10 });
  tx.add({ kind: "counter", name: "c2", comment: "a counter" });
  tx.add({ kind: "flowtable", name: "ft", priority: "filter + 5", devices: ["eth0", "eth1"] });
  tx.add({
    kind: "rule",
    chain: "nat",
    rule: 'iifname "eth0" ip daddr . tcp dport @ts dnat ip to 10.0.0.1',
    comment: "r",
  });
  tx.add({ kind: "element", set: "ts", key: ["10.0.0.1", "80"], timeout: 30, comment: "e, with comma" });
  tx.add({ kind: "element", set: "ts", key: ["10.0.0.0/24", "1000-2000"] });
  tx.add({ kind: "element", map: "nm", key: ["10.0.0.1"], value: ["10.0.0.2", "8080"] });
  tx.add({ kind: "element", map: "vm", key: ["10.0.0.3"], value: ["jump b"] });
  await f.run(tx);
  const dump = await f.dump();
  const g = new FakeNFTables({ family: "inet", table: "t" });
  g.load(dump);
  assert.equal(await g.dump(), dump);
  assert.deepEqual(await g.listElements("map", "nm"), await f.listElements("map", "nm"));
  // all or nothing: a bad line loads nothing
  const h = new FakeNFTables({ family: "inet", table: "t" });
  assert.throws(() => h.load(dump + "add rule inet t zz accept\n"), isNotFound);
  await assert.rejects(h.list("chains"), isNotFound);
  assert.throws(() => h.load("add table ip other\n"), ValidationError);
  assert.throws(() => h.load("flush ruleset\n"), ValidationError);
});

test("fake: dump defaults base chains to policy accept and numbers priorities", async () => {
  const f = new FakeNFTables({ family: "bridge", table: "br" });
  await f.run(
    f
      .newTransaction()
      .add({ kind: "table" })
      .add({ kind: "chain", name: "pre", type: "filter", hook: "prerouting", priority: "dstnat + 1" }),
  );
  assert.equal(
    await f.dump(),
    "add table bridge br\nadd chain bridge br pre { type filter hook prerouting priority -299 ; policy accept ; }\n",
  );
});

test("fake: without destroy in its features it refuses what nft 1.0.6 refuses", async () => {
  const f = new FakeNFTables({
    family: "inet",
    table: "t",
    features: { version: "1.0.6", destroy: false, json: true, objectComments: true },
  });
  await f.run(
    f.newTransaction().add({ kind: "table" }).add({ kind: "map", name: "m", type: "ipv4_addr : verdict" }),
  );
  await assert.rejects(
    f.run(f.newTransaction().destroy({ kind: "rule", chain: "x", handle: 1, rule: "" })),
    isInvalid,
  );
  await assert.rejects(
    f.run(f.newTransaction().destroy({ kind: "element", map: "m", key: ["1.1.1.1"] })),
    isInvalid,
  );
  await f.run(f.newTransaction().destroy({ kind: "chain", name: "zz" }).destroy({ kind: "table" }));
  await assert.rejects(f.dump(), isNotFound);
});

test("fake: a transaction for another table is refused", async () => {
  const f = new FakeNFTables({ family: "inet", table: "t" });
  const g = new FakeNFTables({ family: "inet", table: "u" });
  await assert.rejects(f.run(g.newTransaction().add({ kind: "table" })), ValidationError);
});

test("fake: counters are listed and reset", async () => {
  const f = await setup();
  await f.run(
    f
      .newTransaction()
      .add({ kind: "counter", name: "a2", comment: "x" })
      .reset({ kind: "counter", name: "cn" }),
  );
  assert.deepEqual(
    (await f.listCounters()).map((c) => [c.name, c.packets, c.bytes, c.comment]),
    [
      ["a2", 0, 0, "x"],
      ["cn", 0, 0, undefined],
    ],
  );
  assert.deepEqual(await f.list("counters"), ["a2", "cn"]);
  assert.deepEqual(await f.list("sets"), ["s"]);
  assert.deepEqual(await f.list("flowtables"), []);
});
