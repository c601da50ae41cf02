/**
 * The nftables library against the real kernel, inside throwaway network namespaces: every verb
 * on every object kind it allows, listing, errors and their operation index, emulated destroy,
 * atomicity and namespaces. The injection corpus lives in nftables-injection.test.ts.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  NFTables,
  NftError,
  ValidationError,
  applyTransactions,
  concat,
  ifname,
  isAlreadyExists,
  isNotFound,
  name,
  type Element,
  type Family,
  type NftErrorCode,
  type NftObject,
  type Transaction,
} from "../../src/nftables/index.js";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";

const nets = new NetnsPool();
let ns: Netns;
let other: Netns;

before(async () => {
  await sweepStaleNamespaces();
  [ns, other] = await Promise.all([nets.create("nftk"), nets.create("nftk2")]);
  // A device for netdev/inet ingress chains (no dummy module here: a veth pair inside ns).
  await ns.sh(["ip", "link", "add", "kv0", "type", "veth", "peer", "name", "kv1"]);
  await ns.sh(["ip", "link", "set", "kv0", "up"]);
  await ns.sh(["ip", "link", "set", "kv1", "up"]);
});
after(() => nets.destroyAll());

let seq = 0;
/** A handle on a table no other test uses. */
function fresh(family: Family = "inet", where: Netns = ns): NFTables {
  return new NFTables({ family, table: `k${++seq}`, netns: where.path });
}

async function apply(nft: NFTables, fill: (tx: Transaction) => unknown): Promise<void> {
  const tx = nft.newTransaction();
  fill(tx);
  await nft.run(tx);
}

/** The whole ruleset as nft prints it, less the `expires` countdown of elements with a timeout. */
async function ruleset(where: Netns = ns): Promise<string> {
  return (await where.sh(["nft", "list", "ruleset"])).replace(/ expires \S+/g, "");
}

/** Compares rulesets without printing megabytes of diff. */
async function assertUnchanged(before: string, where: Netns = ns): Promise<void> {
  const now = await ruleset(where);
  if (now === before) return;
  const at = [...now].findIndex((ch, i) => ch !== before[i]);
  assert.fail(`ruleset changed near: ${JSON.stringify(now.slice(Math.max(0, at - 200), at + 200))}`);
}

/** Asserts the promise rejects with an NftError of this code (and operation index, if given). */
async function rejectsWith(
  p: Promise<unknown>,
  code: NftErrorCode,
  operationIndex?: number,
): Promise<NftError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof NftError, `expected an NftError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (operationIndex !== undefined) assert.equal(caught.operationIndex, operationIndex, caught.message);
  return caught;
}

const keys = (elems: Element[]): string[] => elems.map((e) => e.key.join(" . ")).sort();

describe("tables", () => {
  test("add is idempotent, create fails when it exists, comments are kept", async () => {
    const nft = fresh();
    await apply(nft, (tx) => tx.add({ kind: "table", comment: "owned by cni-nft" }));
    await apply(nft, (tx) => tx.add({ kind: "table" }));
    assert.match(await nft.dump(), /^add table inet k\d+ \{ comment "owned by cni-nft" ; \}$/m);
    const err = await rejectsWith(
      apply(nft, (tx) => tx.create({ kind: "table" })),
      "EEXIST",
      0,
    );
    assert.ok(isAlreadyExists(err));
    const other = fresh();
    await apply(other, (tx) => tx.create({ kind: "table" }));
    assert.deepEqual(await other.list("chains"), []);
  });

  test("flush empties every chain but keeps chains, sets and elements; delete removes it", async () => {
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "chain", name: "c" })
        .add({ kind: "rule", chain: "c", rule: "accept" })
        .add({ kind: "set", name: "s", type: "ipv4_addr" })
        .add({ kind: "element", set: "s", key: ["10.0.0.1"] }),
    );
    await apply(nft, (tx) => tx.flush({ kind: "table" }));
    assert.deepEqual(await nft.list("chains"), ["c"]);
    assert.deepEqual(await nft.list("sets"), ["s"]);
    assert.deepEqual(await nft.listRules("c"), []);
    // As nft does: `flush table` removes rules only, set elements stay.
    assert.deepEqual(keys(await nft.listElements("set", "s")), ["10.0.0.1"]);
    await apply(nft, (tx) => tx.delete({ kind: "table" }));
    await rejectsWith(nft.list("chains"), "ENOENT");
    const err = await rejectsWith(
      apply(nft, (tx) => tx.delete({ kind: "table" })),
      "ENOENT",
      0,
    );
    assert.ok(isNotFound(err));
  });

  test("every family can hold a table", async () => {
    for (const family of ["ip", "ip6", "inet", "arp", "bridge", "netdev"] as const) {
      const nft = fresh(family);
      await apply(nft, (tx) => tx.add({ kind: "table" }).add({ kind: "chain", name: "c" }));
      assert.deepEqual(await nft.list("chains"), ["c"], family);
      await apply(nft, (tx) => tx.delete({ kind: "table" }));
    }
  });
});

describe("chains", () => {
  test("regular chains: add, create, flush, delete, comment", async () => {
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "chain", name: "a", comment: "chain a" })
        .add({ kind: "chain", name: "b" }),
    );
    await apply(nft, (tx) => tx.add({ kind: "chain", name: "a" }));
    await rejectsWith(
      apply(nft, (tx) => tx.create({ kind: "chain", name: "a" })),
      "EEXIST",
      0,
    );
    await apply(nft, (tx) => tx.create({ kind: "chain", name: "c" }));
    assert.deepEqual(await nft.list("chains"), ["a", "b", "c"]);
    assert.match(await nft.dump(), /^add chain inet k\d+ a \{ comment "chain a" ; \}$/m);
    await apply(nft, (tx) =>
      tx.add({ kind: "rule", chain: "a", rule: "accept" }).add({ kind: "rule", chain: "a", rule: "drop" }),
    );
    assert.equal((await nft.listRules("a")).length, 2);
    await apply(nft, (tx) => tx.flush({ kind: "chain", name: "a" }));
    assert.deepEqual(await nft.listRules("a"), []);
    await apply(nft, (tx) => tx.delete({ kind: "chain", name: "b" }));
    assert.deepEqual(await nft.list("chains"), ["a", "c"]);
    await rejectsWith(
      apply(nft, (tx) => tx.delete({ kind: "chain", name: "b" })),
      "ENOENT",
      0,
    );
    await rejectsWith(
      apply(nft, (tx) => tx.flush({ kind: "chain", name: "b" })),
      "ENOENT",
      0,
    );
  });

  test("base chains with named priorities, offsets, numbers and policies", async () => {
    const nft = fresh();
    const cases = [
      { name: "raw", type: "filter", hook: "prerouting", priority: "raw", want: -300 },
      { name: "mangle", type: "filter", hook: "output", priority: "mangle + 1", want: -149 },
      { name: "prenat", type: "nat", hook: "prerouting", priority: "dstnat - 10", want: -110 },
      { name: "filt", type: "filter", hook: "input", priority: "filter", want: 0 },
      { name: "sec", type: "filter", hook: "forward", priority: "security + 5", want: 55 },
      { name: "postnat", type: "nat", hook: "postrouting", priority: "srcnat", want: 100 },
      { name: "num", type: "filter", hook: "output", priority: -42, want: -42 },
      { name: "rerouted", type: "route", hook: "output", priority: "mangle", want: -150 },
    ] as const;
    await apply(nft, (tx) => {
      tx.add({ kind: "table" });
      for (const c of cases)
        tx.add({
          kind: "chain",
          name: c.name,
          type: c.type,
          hook: c.hook,
          priority: c.priority,
          policy: "accept",
        });
      tx.add({
        kind: "chain",
        name: "dropper",
        type: "filter",
        hook: "forward",
        priority: 10,
        policy: "drop",
        comment: "base",
      });
    });
    const dump = await nft.dump();
    for (const c of cases)
      assert.match(
        dump,
        new RegExp(
          `^add chain inet k\\d+ ${c.name} \\{ type ${c.type} hook ${c.hook} priority ${c.want} ; policy accept ; \\}$`,
          "m",
        ),
        c.name,
      );
    assert.match(
      dump,
      /dropper \{ type filter hook forward priority 10 ; policy drop ; comment "base" ; \}$/m,
    );
    // Re-adding a base chain with its spec is a no-op; changing its policy through add works.
    await apply(nft, (tx) =>
      tx.add({
        kind: "chain",
        name: "dropper",
        type: "filter",
        hook: "forward",
        priority: 10,
        policy: "accept",
      }),
    );
    assert.match(await nft.dump(), /dropper \{ type filter hook forward priority 10 ; policy accept ;/);
    await apply(nft, (tx) => tx.delete({ kind: "chain", name: "raw" }));
    assert.ok(!(await nft.list("chains")).includes("raw"));
  });

  test("bridge family named priorities (out)", async () => {
    const nft = fresh("bridge");
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "chain", name: "o", type: "filter", hook: "output", priority: "out" })
        .add({ kind: "chain", name: "f", type: "filter", hook: "forward", priority: "filter - 1" }),
    );
    const dump = await nft.dump();
    assert.match(dump, / o \{ type filter hook output priority 100 ;/);
    assert.match(dump, / f \{ type filter hook forward priority -201 ;/);
  });

  test("netdev ingress chain on a device", async () => {
    const nft = fresh("netdev");
    await apply(nft, (tx) =>
      tx.add({ kind: "table" }).add({
        kind: "chain",
        name: "ing",
        type: "filter",
        hook: "ingress",
        device: "kv0",
        priority: "filter - 10",
        policy: "accept",
      }),
    );
    assert.deepEqual(await nft.list("chains"), ["ing"]);
    // nft 1.0.6 leaves the device out of its JSON: dump() reads it from the text listing.
    assert.match(
      await nft.dump(),
      /^add chain netdev k\d+ ing \{ type filter hook ingress device "kv0" priority -10 ; policy accept ; \}$/m,
    );
    const text = await ns.sh(["nft", "list", "chain", "netdev", nft.table, "ing"]);
    assert.match(
      text,
      /type filter hook ingress device(s = \{)? "?kv0"?.* priority filter - 10; policy accept;/,
    );
    await apply(nft, (tx) => tx.delete({ kind: "chain", name: "ing" }));
    assert.deepEqual(await nft.list("chains"), []);
  });
});

describe("rules", () => {
  const port = (rule: string): number => Number(/dport (\d+)/.exec(rule)?.[1]);

  test("add, insert, positions by index and handle, replace and delete by handle", async () => {
    const nft = fresh();
    const ports = async (): Promise<number[]> =>
      (await nft.listRules("c", { text: true })).map((r) => port(r.rule));
    const handleOf = async (p: number): Promise<number> => {
      const r = (await nft.listRules("c", { text: true })).find((x) => port(x.rule) === p);
      assert.ok(r?.handle !== undefined, `rule for port ${p}`);
      return r.handle;
    };
    const rule = (p: number, extra: object = {}) => ({
      kind: "rule" as const,
      chain: "c",
      rule: concat("tcp dport", p, "accept"),
      ...extra,
    });
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "chain", name: "c" })
        .add(rule(1, { comment: "one" }))
        .add(rule(2)),
    );
    assert.deepEqual(await ports(), [1, 2]);
    await apply(nft, (tx) => tx.insert(rule(0)));
    assert.deepEqual(await ports(), [0, 1, 2]);
    await apply(nft, (tx) => tx.add(rule(5, { index: 0 })));
    assert.deepEqual(await ports(), [0, 5, 1, 2]);
    await apply(nft, (tx) => tx.insert(rule(6, { index: 3 })));
    assert.deepEqual(await ports(), [0, 5, 1, 6, 2]);
    const h1 = await handleOf(1);
    await apply(nft, (tx) => tx.add(rule(7, { handle: h1 })));
    assert.deepEqual(await ports(), [0, 5, 1, 7, 6, 2]);
    const h0 = await handleOf(0);
    await apply(nft, (tx) => tx.insert(rule(8, { handle: h0 })));
    assert.deepEqual(await ports(), [8, 0, 5, 1, 7, 6, 2]);
    const h5 = await handleOf(5);
    await apply(nft, (tx) => tx.replace(rule(9, { handle: h5, comment: "nine" })));
    assert.deepEqual(await ports(), [8, 0, 9, 1, 7, 6, 2]);
    assert.equal(await handleOf(9), h5, "replace keeps the handle");
    const h6 = await handleOf(6);
    await apply(nft, (tx) => tx.delete({ kind: "rule", chain: "c", rule: "", handle: h6 }));
    assert.deepEqual(await ports(), [8, 0, 9, 1, 7, 2]);

    const rules = await nft.listRules("c", { text: true });
    assert.deepEqual(
      rules.map((r) => [r.rule, r.comment]),
      [
        ["tcp dport 8 accept", undefined],
        ["tcp dport 0 accept", undefined],
        ["tcp dport 9 accept", "nine"],
        ["tcp dport 1 accept", "one"],
        ["tcp dport 7 accept", undefined],
        ["tcp dport 2 accept", undefined],
      ],
    );
    assert.ok(rules.every((r) => r.chain === "c" && typeof r.handle === "number"));
    // Without text, rules still carry handle and comment.
    const bare = await nft.listRules("c");
    assert.deepEqual(
      bare.map((r) => r.handle),
      rules.map((r) => r.handle),
    );
    assert.equal(bare[2]!.comment, "nine");

    await rejectsWith(
      apply(nft, (tx) => tx.delete({ kind: "rule", chain: "c", rule: "", handle: h6 })),
      "ENOENT",
      0,
    );
    await rejectsWith(
      apply(nft, (tx) => tx.replace(rule(3, { handle: h6 }))),
      "ENOENT",
      0,
    );
    await rejectsWith(nft.listRules("nosuch"), "ENOENT");
  });

  test("rules built with helpers round-trip as text", async () => {
    const nft = fresh();
    const text = concat(
      "iifname",
      ifname("kv0"),
      "oifname",
      ifname("veth*", "oif", true),
      "jump",
      name("sub"),
    );
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "chain", name: "sub" })
        .add({ kind: "chain", name: "c" })
        .add({ kind: "rule", chain: "c", rule: text, comment: "from helpers" }),
    );
    const [r] = await nft.listRules("c", { text: true });
    assert.equal(r?.rule, 'iifname "kv0" oifname "veth*" jump sub');
    assert.equal(r?.comment, "from helpers");
  });

  test("destroy of a rule: native where nft has destroy, refused with EINVAL otherwise", async () => {
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "chain", name: "c" })
        .add({ kind: "rule", chain: "c", rule: "accept" }),
    );
    const [r] = await nft.listRules("c");
    const tx = nft.newTransaction().destroy({ kind: "rule", chain: "c", rule: "", handle: r!.handle! });
    if ((await nft.features()).destroy) {
      await nft.run(tx);
      assert.deepEqual(await nft.listRules("c"), []);
    } else {
      const err = await rejectsWith(nft.run(tx), "EINVAL", 0);
      assert.match(err.message, /destroy/);
      assert.equal((await nft.listRules("c")).length, 1);
    }
  });
});

describe("sets and maps", () => {
  test("every set property is written and read back", async () => {
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({
          kind: "set",
          name: "full",
          type: "ipv4_addr . inet_service",
          flags: ["interval", "timeout"],
          timeout: 60,
          gcInterval: 10,
          size: 1000,
          policy: "memory",
          autoMerge: true,
          counter: true,
          comment: "all of it",
        })
        .add({ kind: "set", name: "tof", typeof: "ip saddr . tcp dport" })
        .add({ kind: "set", name: "dyn", type: "ipv6_addr", flags: ["dynamic"], size: 64 })
        .add({ kind: "set", name: "const", type: "inet_service", flags: ["constant"] })
        .add({ kind: "map", name: "verdicts", type: "ipv4_addr : verdict", comment: "verdicts" })
        .add({ kind: "map", name: "nat", type: "ipv4_addr . inet_service : ipv4_addr . inet_service" })
        .add({ kind: "map", name: "tmap", typeof: "ip daddr : meta mark", policy: "performance" }),
    );
    assert.deepEqual(await nft.list("sets"), ["const", "dyn", "full", "tof"]);
    assert.deepEqual(await nft.list("maps"), ["nat", "tmap", "verdicts"]);
    const dump = await nft.dump();
    const line = (n: string): string =>
      dump.split("\n").find((l) => new RegExp(`^add (set|map) inet k\\d+ ${n} `).test(l)) ?? "";
    const full = line("full");
    for (const part of [
      "type ipv4_addr . inet_service ;",
      "flags interval,timeout ;",
      "timeout 60s ;",
      "gc-interval 10s ;",
      "size 1000 ;",
      "policy memory ;",
      "auto-merge ;",
      "counter ;",
      'comment "all of it" ;',
    ])
      assert.ok(full.includes(part), `${part} in ${full}`);
    assert.match(line("tof"), /type ipv4_addr \. inet_service ;/);
    assert.match(line("dyn"), /flags dynamic ; size 64 ;/);
    assert.match(line("const"), /flags constant ;/);
    assert.match(
      line("verdicts"),
      /^add map .* verdicts \{ type ipv4_addr : verdict ; comment "verdicts" ; \}$/,
    );
    assert.match(line("nat"), /type ipv4_addr \. inet_service : ipv4_addr \. inet_service ;/);
    assert.match(line("tmap"), /type ipv4_addr : mark ;/);
  });

  test("create, flush and delete of sets and maps", async () => {
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .create({ kind: "set", name: "s", type: "ipv4_addr" })
        .create({ kind: "map", name: "m", type: "ipv4_addr : ipv4_addr" })
        .add({ kind: "element", set: "s", key: ["10.0.0.1"] })
        .add({ kind: "element", map: "m", key: ["10.0.0.1"], value: ["10.0.0.2"] }),
    );
    await apply(nft, (tx) => tx.add({ kind: "set", name: "s", type: "ipv4_addr" }));
    await rejectsWith(
      apply(nft, (tx) => tx.create({ kind: "set", name: "s", type: "ipv4_addr" })),
      "EEXIST",
      0,
    );
    await rejectsWith(
      apply(nft, (tx) => tx.create({ kind: "map", name: "m", type: "ipv4_addr : ipv4_addr" })),
      "EEXIST",
      0,
    );
    await apply(nft, (tx) => tx.flush({ kind: "set", name: "s" }).flush({ kind: "map", name: "m" }));
    assert.deepEqual(await nft.listElements("set", "s"), []);
    assert.deepEqual(await nft.listElements("map", "m"), []);
    await apply(nft, (tx) => tx.delete({ kind: "set", name: "s" }).delete({ kind: "map", name: "m" }));
    assert.deepEqual(await nft.list("sets"), []);
    assert.deepEqual(await nft.list("maps"), []);
    await rejectsWith(
      apply(nft, (tx) => tx.delete({ kind: "set", name: "s" })),
      "ENOENT",
      0,
    );
    await rejectsWith(nft.listElements("set", "s"), "ENOENT");
  });

  test("a set in use by a rule cannot be deleted (EBUSY)", async () => {
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "chain", name: "c" })
        .add({ kind: "set", name: "s", type: "ipv4_addr" })
        .add({ kind: "rule", chain: "c", rule: "ip saddr @s accept" }),
    );
    await rejectsWith(
      apply(nft, (tx) => tx.delete({ kind: "set", name: "s" })),
      "EBUSY",
      0,
    );
  });
});

describe("elements", () => {
  test("keys and values of every shape are listed as they were written", async () => {
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "chain", name: "tgt" })
        .add({ kind: "set", name: "addr", type: "ipv4_addr" })
        .add({ kind: "set", name: "addr6", type: "ipv6_addr" })
        .add({ kind: "set", name: "num", type: "inet_service" })
        .add({ kind: "set", name: "str", type: "ifname" })
        .add({ kind: "set", name: "ivl", type: "ipv4_addr", flags: ["interval"] })
        .add({ kind: "set", name: "cat", type: "ipv4_addr . inet_proto . inet_service" })
        .add({ kind: "set", name: "cativl", type: "ipv4_addr . inet_service", flags: ["interval"] })
        .add({ kind: "map", name: "vm", type: "ipv4_addr : verdict" })
        .add({ kind: "map", name: "nat", type: "ipv4_addr . inet_service : ipv4_addr . inet_service" }),
    );
    await apply(nft, (tx) => {
      for (const k of ["10.0.0.1", "10.0.0.2"]) tx.add({ kind: "element", set: "addr", key: [k] });
      tx.add({ kind: "element", set: "addr6", key: ["2001:db8::1"] });
      for (const k of ["80", "443"]) tx.add({ kind: "element", set: "num", key: [k] });
      tx.add({ kind: "element", set: "str", key: ['"eth0"'] });
      tx.add({ kind: "element", set: "str", key: ["veth1"] });
      tx.add({ kind: "element", set: "str", key: ['"a b"'] });
      tx.add({ kind: "element", set: "ivl", key: ["10.0.0.0/8"] });
      tx.add({ kind: "element", set: "ivl", key: ["192.168.0.1-192.168.0.9"] });
      tx.add({ kind: "element", set: "cat", key: ["10.0.0.1", "tcp", "80"] });
      tx.add({ kind: "element", set: "cativl", key: ["10.1.0.0/16", "1000-2000"] });
      tx.add({ kind: "element", map: "vm", key: ["1.1.1.1"], value: ["accept"] });
      tx.add({ kind: "element", map: "vm", key: ["1.1.1.2"], value: ["drop"] });
      tx.add({ kind: "element", map: "vm", key: ["1.1.1.3"], value: ["jump tgt"], comment: "to tgt" });
      tx.add({ kind: "element", map: "vm", key: ["1.1.1.4"], value: ["goto tgt"] });
      tx.add({ kind: "element", map: "vm", key: ["1.1.1.5"], value: ["return"] });
      tx.add({ kind: "element", map: "vm", key: ["1.1.1.6"], value: ["continue"] });
      tx.add({ kind: "element", map: "nat", key: ["10.0.0.1", "80"], value: ["10.9.9.9", "8080"] });
    });
    assert.deepEqual(keys(await nft.listElements("set", "addr")), ["10.0.0.1", "10.0.0.2"]);
    assert.deepEqual(keys(await nft.listElements("set", "addr6")), ["2001:db8::1"]);
    assert.deepEqual(keys(await nft.listElements("set", "num")), ["443", "80"]);
    assert.deepEqual(keys(await nft.listElements("set", "str")), ['"a b"', "eth0", "veth1"]);
    assert.deepEqual(keys(await nft.listElements("set", "ivl")), ["10.0.0.0/8", "192.168.0.1-192.168.0.9"]);
    assert.deepEqual(
      (await nft.listElements("set", "cat")).map((e) => e.key),
      [["10.0.0.1", "tcp", "80"]],
    );
    assert.deepEqual(
      (await nft.listElements("set", "cativl")).map((e) => e.key),
      [["10.1.0.0/16", "1000-2000"]],
    );
    const vm = (await nft.listElements("map", "vm")).sort((a, b) => (a.key[0]! < b.key[0]! ? -1 : 1));
    assert.deepEqual(
      vm.map((e) => [e.map, e.key[0], e.value?.join(" "), e.comment]),
      [
        ["vm", "1.1.1.1", "accept", undefined],
        ["vm", "1.1.1.2", "drop", undefined],
        ["vm", "1.1.1.3", "jump tgt", "to tgt"],
        ["vm", "1.1.1.4", "goto tgt", undefined],
        ["vm", "1.1.1.5", "return", undefined],
        ["vm", "1.1.1.6", "continue", undefined],
      ],
    );
    const [nat] = await nft.listElements("map", "nat");
    assert.deepEqual(
      [nat?.key, nat?.value],
      [
        ["10.0.0.1", "80"],
        ["10.9.9.9", "8080"],
      ],
    );
    // Listed elements can be fed back: delete every one of them.
    const back = nft.newTransaction();
    for (const [kind, set] of [
      ["set", "addr"],
      ["set", "str"],
      ["set", "ivl"],
      ["set", "cat"],
      ["set", "cativl"],
      ["map", "vm"],
      ["map", "nat"],
    ] as const)
      for (const e of await nft.listElements(kind, set)) back.delete(e);
    await nft.run(back);
    for (const set of ["addr", "str", "ivl", "cat", "cativl"])
      assert.deepEqual(await nft.listElements("set", set), [], set);
    assert.deepEqual(await nft.listElements("map", "vm"), []);
  });

  test("comments, per-element timeouts and counters", async () => {
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "set", name: "t", type: "ipv4_addr", flags: ["timeout"], counter: true })
        .add({ kind: "element", set: "t", key: ["10.0.0.1"], timeout: 300, counter: true, comment: "pod a" })
        .add({ kind: "element", set: "t", key: ["10.0.0.2"], comment: "pod b" })
        .add({ kind: "element", set: "t", key: ["10.0.0.3"], timeout: 120 })
        .add({ kind: "element", set: "t", key: ["127.0.0.1"], counter: true })
        .add({ kind: "chain", name: "out", type: "filter", hook: "output", priority: 0 })
        .add({ kind: "rule", chain: "out", rule: "udp dport 9 ip daddr @t accept" }),
    );
    await ns.sh(["bash", "-c", "echo hello > /dev/udp/127.0.0.1/9"]);
    const [hit] = (await nft.listElements("set", "t")).filter((e) => e.key[0] === "127.0.0.1");
    assert.equal(hit?.packets, 1);
    assert.ok((hit?.bytes ?? 0) > 0);
    await apply(nft, (tx) => tx.delete({ kind: "element", set: "t", key: ["127.0.0.1"] }));
    const elems = (await nft.listElements("set", "t")).sort((a, b) => (a.key[0]! < b.key[0]! ? -1 : 1));
    assert.deepEqual(
      elems.map((e) => [e.key[0], e.timeout, e.comment, e.counter, e.packets, e.bytes]),
      [
        ["10.0.0.1", 300, "pod a", true, 0, 0],
        ["10.0.0.2", undefined, "pod b", true, 0, 0],
        ["10.0.0.3", 120, undefined, true, 0, 0],
      ],
    );
  });

  test("add of an existing element is a no-op, create fails, delete of a missing one fails", async () => {
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "set", name: "s", type: "ipv4_addr" })
        .add({ kind: "map", name: "m", type: "ipv4_addr : inet_service" })
        .add({ kind: "element", set: "s", key: ["10.0.0.1"] })
        .add({ kind: "element", map: "m", key: ["10.0.0.1"], value: ["80"] }),
    );
    await apply(nft, (tx) =>
      tx
        .add({ kind: "element", set: "s", key: ["10.0.0.1"] })
        .add({ kind: "element", map: "m", key: ["10.0.0.1"], value: ["80"] }),
    );
    await rejectsWith(
      apply(nft, (tx) => tx.create({ kind: "element", set: "s", key: ["10.0.0.1"] })),
      "EEXIST",
      0,
    );
    // A map key bound to another value is an existing element too.
    await rejectsWith(
      apply(nft, (tx) => tx.add({ kind: "element", map: "m", key: ["10.0.0.1"], value: ["81"] })),
      "EEXIST",
      0,
    );
    await apply(nft, (tx) => tx.delete({ kind: "element", set: "s", key: ["10.0.0.1"] }));
    await rejectsWith(
      apply(nft, (tx) => tx.delete({ kind: "element", set: "s", key: ["10.0.0.1"] })),
      "ENOENT",
      0,
    );
    await apply(nft, (tx) => tx.delete({ kind: "element", map: "m", key: ["10.0.0.1"] }));
    assert.deepEqual(await nft.listElements("map", "m"), []);
  });
});

describe("counters", () => {
  test("named counters: add, create, list, count traffic, reset, delete", async () => {
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "counter", name: "udp9", comment: "discard port" })
        .create({ kind: "counter", name: "idle" })
        .add({ kind: "chain", name: "out", type: "filter", hook: "output", priority: 0 })
        .add({ kind: "rule", chain: "out", rule: concat("udp dport 9 counter name", name("udp9")) }),
    );
    await rejectsWith(
      apply(nft, (tx) => tx.create({ kind: "counter", name: "idle" })),
      "EEXIST",
      0,
    );
    assert.deepEqual(await nft.list("counters"), ["idle", "udp9"]);
    await ns.sh(["bash", "-c", "echo hello > /dev/udp/127.0.0.1/9"]);
    let counters = await nft.listCounters();
    assert.deepEqual(
      counters.map((c) => [c.name, c.comment, c.packets]),
      [
        ["idle", undefined, 0],
        ["udp9", "discard port", 1],
      ],
    );
    assert.ok((counters[1]?.bytes ?? 0) > 0);
    await apply(nft, (tx) => tx.reset({ kind: "counter", name: "udp9" }));
    counters = await nft.listCounters();
    assert.deepEqual(
      counters.map((c) => [c.name, c.packets, c.bytes]),
      [
        ["idle", 0, 0],
        ["udp9", 0, 0],
      ],
    );
    await rejectsWith(
      apply(nft, (tx) => tx.delete({ kind: "counter", name: "udp9" })),
      "EBUSY",
      0,
    );
    await apply(nft, (tx) => tx.delete({ kind: "counter", name: "idle" }));
    assert.deepEqual(await nft.list("counters"), ["udp9"]);
    await rejectsWith(
      apply(nft, (tx) => tx.delete({ kind: "counter", name: "idle" })),
      "ENOENT",
      0,
    );
    await rejectsWith(
      apply(nft, (tx) => tx.reset({ kind: "counter", name: "idle" })),
      "ENOENT",
      0,
    );
  });
});

describe("flowtables", () => {
  let supported = false;
  let reason = "";
  before(async () => {
    const probe = fresh();
    try {
      await apply(probe, (tx) =>
        tx.add({ kind: "table" }).add({ kind: "flowtable", name: "probe", devices: ["kv0"] }),
      );
      supported = true;
    } catch (e) {
      reason = `the kernel refuses flowtables (${(e as NftError).code}: ${(e as Error).message})`;
    }
    await apply(probe, (tx) => tx.destroy({ kind: "table" }));
  });

  test("add, create, list, delete and destroy a flowtable", async (t) => {
    if (!supported) return t.skip(reason);
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "flowtable", name: "ft", priority: "filter + 1", devices: ["kv0", "kv1"] })
        .create({ kind: "flowtable", name: "ft2" }),
    );
    assert.deepEqual(await nft.list("flowtables"), ["ft", "ft2"]);
    await rejectsWith(
      apply(nft, (tx) => tx.create({ kind: "flowtable", name: "ft2" })),
      "EEXIST",
      0,
    );
    await apply(nft, (tx) =>
      tx.delete({ kind: "flowtable", name: "ft2" }).destroy({ kind: "flowtable", name: "gone" }),
    );
    assert.deepEqual(await nft.list("flowtables"), ["ft"]);
  });
});

describe("listing", () => {
  test("list of each kind is sorted and limited to the table; a missing table is ENOENT", async () => {
    const nft = fresh();
    const neighbour = fresh();
    for (const t of [nft, neighbour])
      await apply(t, (tx) =>
        tx
          .add({ kind: "table" })
          .add({ kind: "chain", name: "zz" })
          .add({ kind: "chain", name: "aa" })
          .add({ kind: "set", name: "s2", type: "ipv4_addr" })
          .add({ kind: "set", name: "s1", type: "ipv4_addr" })
          .add({ kind: "map", name: "m1", type: "ipv4_addr : verdict" })
          .add({ kind: "counter", name: "c2" })
          .add({ kind: "counter", name: "c1" }),
      );
    await apply(neighbour, (tx) =>
      tx.add({ kind: "chain", name: "extra" }).add({ kind: "counter", name: "c3" }),
    );
    assert.deepEqual(await nft.list("chains"), ["aa", "zz"]);
    assert.deepEqual(await nft.list("sets"), ["s1", "s2"]);
    assert.deepEqual(await nft.list("maps"), ["m1"]);
    assert.deepEqual(await nft.list("counters"), ["c1", "c2"]);
    assert.deepEqual(await nft.list("flowtables"), []);
    assert.deepEqual(
      (await nft.listCounters()).map((c) => c.name),
      ["c1", "c2"],
    );
    const missing = fresh();
    for (const kind of ["chains", "sets", "maps", "counters", "flowtables"] as const)
      await rejectsWith(missing.list(kind), "ENOENT");
    await rejectsWith(missing.listCounters(), "ENOENT");
    await rejectsWith(missing.listRules("c"), "ENOENT");
    await rejectsWith(missing.listElements("set", "s"), "ENOENT");
    await rejectsWith(missing.dump(), "ENOENT");
  });

  test("check() validates against the kernel without applying", async () => {
    const nft = fresh();
    await nft.check(nft.newTransaction().add({ kind: "table" }).add({ kind: "chain", name: "c" }));
    await rejectsWith(nft.list("chains"), "ENOENT");
    await apply(nft, (tx) => tx.add({ kind: "table" }));
    await rejectsWith(nft.check(nft.newTransaction().delete({ kind: "chain", name: "nosuch" })), "ENOENT", 0);
  });
});

describe("errors", () => {
  test("operationIndex names the failing operation of a transaction", async () => {
    const nft = fresh();
    await apply(nft, (tx) => tx.add({ kind: "table" }).add({ kind: "chain", name: "have" }));
    const before = await ruleset();
    const err = await rejectsWith(
      apply(nft, (tx) =>
        tx
          .add({ kind: "chain", name: "a" })
          .add({ kind: "set", name: "s", type: "ipv4_addr" })
          .create({ kind: "chain", name: "have" })
          .add({ kind: "chain", name: "b" }),
      ),
      "EEXIST",
      2,
    );
    assert.equal(err.operation?.verb, "create");
    assert.match(err.message, /operation 3/);
    await assertUnchanged(before);
    await rejectsWith(
      apply(nft, (tx) =>
        tx
          .add({ kind: "chain", name: "a" })
          .add({ kind: "rule", chain: "a", rule: "accept" })
          .delete({ kind: "set", name: "nosuch" })
          .add({ kind: "chain", name: "b" }),
      ),
      "ENOENT",
      2,
    );
    await assertUnchanged(before);
  });

  test("operationIndex names the element inside a batched element command", async () => {
    const nft = fresh();
    await apply(nft, (tx) => {
      tx.add({ kind: "table" }).add({ kind: "set", name: "s", type: "ipv4_addr" });
      tx.add({ kind: "map", name: "m", type: "ipv4_addr : verdict" });
      for (let i = 0; i < 2000; i++)
        tx.add({ kind: "element", set: "s", key: [`10.0.${i >> 8}.${i & 255}`] });
      tx.add({ kind: "element", map: "m", key: ["10.0.0.1"], value: ["accept"] });
    });
    const before = await ruleset();
    // A missing key among present ones, in the first and in a later command of the batch.
    for (const missingAt of [3, 1500]) {
      const err = await rejectsWith(
        apply(nft, (tx) => {
          tx.add({ kind: "chain", name: "x" });
          for (let i = 0; i < 1800; i++) {
            const key = i === missingAt ? "10.99.0.1" : `10.0.${i >> 8}.${i & 255}`;
            tx.delete({ kind: "element", set: "s", key: [key] });
          }
        }),
        "ENOENT",
        missingAt + 1,
      );
      assert.deepEqual((err.operation?.object as Element).key, ["10.99.0.1"]);
    }
    await rejectsWith(
      apply(nft, (tx) =>
        tx
          .create({ kind: "element", map: "m", key: ["10.0.0.2"], value: ["drop"] })
          .create({ kind: "element", map: "m", key: ["10.0.0.3"], value: ["drop"], comment: "c" })
          .create({ kind: "element", map: "m", key: ["10.0.0.1"], value: ["accept"] })
          .create({ kind: "element", map: "m", key: ["10.0.0.4"], value: ["drop"] }),
      ),
      "EEXIST",
      2,
    );
    await assertUnchanged(before);
  });

  test("a syntax error nft finds is mapped to its operation, and nothing is applied", async () => {
    const nft = fresh();
    await apply(nft, (tx) => tx.add({ kind: "table" }).add({ kind: "chain", name: "c" }));
    const before = await ruleset();
    const err = await rejectsWith(
      apply(nft, (tx) =>
        tx
          .add({ kind: "rule", chain: "c", rule: "accept" })
          .add({ kind: "rule", chain: "c", rule: "tcp dport frobnicate accept" })
          .add({ kind: "rule", chain: "c", rule: "drop" }),
      ),
      "ESYNTAX",
      1,
    );
    assert.ok(err.stderr?.includes("frobnicate"));
    await assertUnchanged(before);
  });

  test("verbs nft does not allow on a kind are refused before nft runs", async () => {
    const nft = fresh();
    const samples = {
      table: { kind: "table" },
      chain: { kind: "chain", name: "c" },
      rule: { kind: "rule", chain: "c", rule: "accept", handle: 1 },
      set: { kind: "set", name: "s", type: "ipv4_addr" },
      map: { kind: "map", name: "m", type: "ipv4_addr : verdict" },
      element: { kind: "element", set: "s", key: ["10.0.0.1"] },
      flowtable: { kind: "flowtable", name: "f" },
      counter: { kind: "counter", name: "n" },
    } as const;
    const verbs = ["add", "create", "insert", "replace", "delete", "destroy", "flush", "reset"] as const;
    const allowed: Record<keyof typeof samples, string[]> = {
      table: ["add", "create", "delete", "destroy", "flush"],
      chain: ["add", "create", "delete", "destroy", "flush"],
      rule: ["add", "insert", "replace", "delete", "destroy"],
      set: ["add", "create", "delete", "destroy", "flush"],
      map: ["add", "create", "delete", "destroy", "flush"],
      element: ["add", "create", "delete", "destroy"],
      flowtable: ["add", "create", "delete", "destroy"],
      counter: ["add", "create", "delete", "destroy", "reset"],
    };
    for (const [kind, obj] of Object.entries(samples) as Array<[keyof typeof samples, NftObject]>)
      for (const verb of verbs) {
        if (allowed[kind].includes(verb)) continue;
        const tx = nft.newTransaction() as unknown as Record<string, (o: NftObject) => Transaction>;
        const built = tx[verb]!.call(tx, obj);
        assert.ok(built.error instanceof NftError, `${verb} ${kind} accepted`);
        await rejectsWith(nft.run(built), "EINVAL", 0);
      }
    await rejectsWith(nft.list("chains"), "ENOENT");
  });

  test("an invalid operation fails the transaction before nft runs", async () => {
    const nft = fresh();
    const tx = nft
      .newTransaction()
      .add({ kind: "table" })
      .add({ kind: "chain", name: "ok" })
      .add({ kind: "rule", chain: "ok", rule: "accept; flush ruleset" });
    assert.ok(tx.error instanceof NftError);
    const err = await rejectsWith(nft.run(tx), "EINVAL", 2);
    assert.equal((err as ValidationError).field, "rule.rule");
    await rejectsWith(nft.list("chains"), "ENOENT");
  });

  test("a failing transaction leaves the ruleset byte-identical", async () => {
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "chain", name: "c" })
        .add({ kind: "rule", chain: "c", rule: "accept" })
        .add({ kind: "set", name: "s", type: "ipv4_addr" })
        .add({ kind: "element", set: "s", key: ["10.0.0.1"] })
        .add({ kind: "counter", name: "n" }),
    );
    const before = await ruleset();
    const [r] = await nft.listRules("c");
    await rejectsWith(
      apply(nft, (tx) =>
        tx
          .flush({ kind: "table" })
          .delete({ kind: "rule", chain: "c", rule: "", handle: r!.handle! })
          .replace({ kind: "rule", chain: "c", rule: "drop", handle: r!.handle! })
          .add({ kind: "chain", name: "new" })
          .add({ kind: "element", set: "s", key: ["10.0.0.2"] })
          .delete({ kind: "counter", name: "n" })
          .destroy({ kind: "set", name: "s", type: "ipv4_addr" })
          .delete({ kind: "chain", name: "absentchain" }),
      ),
      "ENOENT",
    );
    await assertUnchanged(before);
  });

  test("applyTransactions: two tables in one atomic nft run", async () => {
    const a = fresh();
    const b = fresh("ip");
    const before = await ruleset();
    const ta = a.newTransaction().add({ kind: "table" }).add({ kind: "chain", name: "c" });
    const tb = b.newTransaction().add({ kind: "table" }).delete({ kind: "chain", name: "absentchain" });
    const err = await rejectsWith(applyTransactions([ta, tb], { netns: ns.path }), "ENOENT", 1);
    assert.match(err.message, new RegExp(`ip ${b.table}`));
    await assertUnchanged(before);
    const tb2 = b.newTransaction().add({ kind: "table" }).add({ kind: "chain", name: "d" });
    await applyTransactions([ta, tb2], { netns: ns.path });
    assert.deepEqual(await a.list("chains"), ["c"]);
    assert.deepEqual(await b.list("chains"), ["d"]);
  });
});

describe("destroy", () => {
  test("destroy of missing objects succeeds and creates nothing", async () => {
    const gone = fresh();
    await apply(gone, (tx) => tx.destroy({ kind: "table" }));
    await rejectsWith(gone.list("chains"), "ENOENT");

    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "set", name: "s", type: "ipv4_addr" })
        .add({ kind: "map", name: "m", type: "ipv4_addr : verdict" }),
    );
    const before = await nft.dump();
    await apply(nft, (tx) =>
      tx
        .destroy({ kind: "chain", name: "c" })
        .destroy({ kind: "set", name: "s2", type: "ipv4_addr" })
        .destroy({ kind: "map", name: "m2", type: "ipv4_addr : inet_service" })
        .destroy({ kind: "counter", name: "n" })
        .destroy({ kind: "element", set: "s", key: ["10.0.0.1"] })
        .destroy({ kind: "element", map: "m", key: ["10.0.0.1"], value: ["accept"] }),
    );
    assert.equal(await nft.dump(), before);
  });

  test("destroy of present objects removes them", async () => {
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "chain", name: "c", type: "filter", hook: "input", priority: 0 })
        .add({ kind: "rule", chain: "c", rule: "accept" })
        .add({ kind: "chain", name: "keep" })
        .add({ kind: "set", name: "s", type: "ipv4_addr", flags: ["interval"], comment: "x" })
        .add({ kind: "map", name: "m", type: "ipv4_addr : verdict" })
        .add({ kind: "set", name: "es", type: "ipv4_addr . inet_service" })
        .add({ kind: "map", name: "em", type: "ipv4_addr : verdict" })
        .add({ kind: "counter", name: "n", comment: "n" })
        .add({ kind: "element", set: "es", key: ["10.0.0.1", "80"] })
        .add({ kind: "element", set: "es", key: ["10.0.0.2", "80"] })
        .add({ kind: "element", map: "em", key: ["10.0.0.1"], value: ["accept"] })
        .add({ kind: "element", map: "em", key: ["10.0.0.2"], value: ["jump keep"] }),
    );
    await apply(nft, (tx) =>
      tx
        .destroy({ kind: "chain", name: "c" })
        .destroy({ kind: "set", name: "s", type: "ipv4_addr", flags: ["interval"] })
        .destroy({ kind: "map", name: "m", type: "ipv4_addr : verdict" })
        .destroy({ kind: "counter", name: "n" })
        .destroy({ kind: "element", set: "es", key: ["10.0.0.1", "80"] })
        .destroy({ kind: "element", map: "em", key: ["10.0.0.2"], value: ["jump keep"] }),
    );
    assert.deepEqual(await nft.list("chains"), ["keep"]);
    assert.deepEqual(await nft.list("sets"), ["es"]);
    assert.deepEqual(await nft.list("maps"), ["em"]);
    assert.deepEqual(await nft.list("counters"), []);
    assert.deepEqual(
      (await nft.listElements("set", "es")).map((e) => e.key),
      [["10.0.0.2", "80"]],
    );
    assert.deepEqual(keys(await nft.listElements("map", "em")), ["10.0.0.1"]);
    await apply(nft, (tx) => tx.destroy({ kind: "table" }));
    await rejectsWith(nft.list("chains"), "ENOENT");
  });

  test("destroy is atomic with the rest of its transaction", async () => {
    const nft = fresh();
    await apply(nft, (tx) =>
      tx
        .add({ kind: "table" })
        .add({ kind: "chain", name: "c" })
        .add({ kind: "set", name: "s", type: "ipv4_addr" })
        .add({ kind: "element", set: "s", key: ["10.0.0.1"] })
        .add({ kind: "counter", name: "n" }),
    );
    const before = await ruleset();
    await rejectsWith(
      apply(nft, (tx) =>
        tx
          .destroy({ kind: "chain", name: "c" })
          .destroy({ kind: "element", set: "s", key: ["10.0.0.1"] })
          .destroy({ kind: "counter", name: "n" })
          .destroy({ kind: "chain", name: "absent" })
          .delete({ kind: "chain", name: "absent2" }),
      ),
      "ENOENT",
      4,
    );
    await assertUnchanged(before);
  });

  test("destroy of a set or map without its type is refused where destroy is emulated", async (t) => {
    const nft = fresh();
    if ((await nft.features()).destroy) return t.skip("this nft has a native destroy");
    await apply(nft, (tx) => tx.add({ kind: "table" }).add({ kind: "set", name: "s", type: "ipv4_addr" }));
    await rejectsWith(
      apply(nft, (tx) => tx.destroy({ kind: "set", name: "s" })),
      "EINVAL",
      0,
    );
    // A wrong type cannot turn into a silent success either.
    await rejectsWith(
      apply(nft, (tx) => tx.destroy({ kind: "set", name: "s", type: "ipv6_addr" })),
      "EEXIST",
      0,
    );
    assert.deepEqual(await nft.list("sets"), ["s"]);
  });
});

describe("namespaces", () => {
  test("objects made through netns exist only in that namespace", async () => {
    const here = fresh("inet", ns);
    const there = new NFTables({ family: "inet", table: here.table, netns: other.path });
    const otherBefore = await ruleset(other);
    await apply(here, (tx) => tx.add({ kind: "table" }).add({ kind: "chain", name: "only-here" }));
    assert.deepEqual(await here.list("chains"), ["only-here"]);
    await rejectsWith(there.list("chains"), "ENOENT");
    await assertUnchanged(otherBefore, other);
    assert.ok(!otherBefore.includes(here.table));

    await apply(there, (tx) => tx.add({ kind: "table" }).add({ kind: "chain", name: "only-there" }));
    assert.deepEqual(await there.list("chains"), ["only-there"]);
    assert.deepEqual(await here.list("chains"), ["only-here"]);
    await apply(there, (tx) => tx.delete({ kind: "table" }));
    assert.deepEqual(await here.list("chains"), ["only-here"]);
    await assertUnchanged(otherBefore, other);
  });
});
