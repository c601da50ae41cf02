/**
 * Injection corpus: values from outside (container IDs, interface names, comments, names,
 * element values) that try to end a command, start a comment, nest a block, smuggle a NUL or
 * invalid UTF-8, or exceed a kernel limit. Each must be refused before nft runs (ValidationError
 * thrown, or run() rejecting with EINVAL), and `nft list ruleset` in the namespace must stay
 * byte-identical.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  NFTables,
  NftError,
  ValidationError,
  concat,
  ifname,
  name,
  quoted,
  setRef,
  type Transaction,
} from "../../src/nftables/index.js";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";

const nets = new NetnsPool();
let ns: Netns;
let nft: NFTables;
let baseline = "";

const TABLE = "inj";

before(async () => {
  await sweepStaleNamespaces();
  ns = await nets.create("nftinj");
  nft = new NFTables({ family: "inet", table: TABLE, netns: ns.path });
  const tx = nft
    .newTransaction()
    .add({ kind: "table", comment: "target" })
    .add({ kind: "chain", name: "c" })
    .add({ kind: "rule", chain: "c", rule: "tcp dport 22 accept", comment: "keep me" })
    .add({ kind: "set", name: "s", type: "ipv4_addr" })
    .add({ kind: "set", name: "names", type: "ifname" })
    .add({ kind: "map", name: "m", type: "ipv4_addr : verdict" })
    .add({ kind: "counter", name: "n" })
    .add({ kind: "element", set: "s", key: ["10.0.0.1"], comment: "pod" });
  await nft.run(tx);
  baseline = await ruleset();
  assert.match(baseline, /keep me/);
});
after(() => nets.destroyAll());

function ruleset(): Promise<string> {
  return ns.sh(["nft", "list", "ruleset"]);
}

/** Values that try to break out of whatever field they land in. */
const HOSTILE: ReadonlyArray<[string, string]> = [
  ["quote then flush ruleset", 'x"; flush ruleset'],
  ["bare quote flush", '"; flush ruleset; add table inet pwn #'],
  ["semicolon flush", "x; flush ruleset"],
  ["newline flush", "x\nflush ruleset"],
  ["carriage return", "x\rflush ruleset"],
  ["CRLF", "x\r\ndelete table inet inj"],
  ["hash comment", "x # rest"],
  ["lone hash", "#"],
  ["open brace", "x {"],
  ["close brace", "x }"],
  ["braces", "{ x }"],
  ["lone semicolon", ";"],
  ["backslash", "a\\b"],
  ["trailing backslash", "a\\"],
  ["backslash quote", 'a\\"'],
  ["NUL", "a\0b"],
  ["lone NUL", "\0"],
  ["tab", "a\tb"],
  ["escape", "a\x1b[31m"],
  ["DEL", "a\x7f"],
  ["lone high surrogate", "a\uD800b"],
  ["lone low surrogate", "\uDC00"],
  ["reversed surrogates", "\uDC00\uD800"],
];

const COMMENT_TOO_LONG: Array<[string, string]> = [
  ["comment of 129 bytes", "c".repeat(129)],
  ["comment of 130 UTF-8 bytes in 65 characters", "é".repeat(65)],
];
const NAME_TOO_LONG: Array<[string, string]> = [
  ["name of 256 bytes", "n".repeat(256)],
  ["name of 1 MiB", "n".repeat(1 << 20)],
];
const IFNAME_TOO_LONG: Array<[string, string]> = [
  ["ifname of 16 bytes", "i".repeat(16)],
  ["ifname of 16 UTF-8 bytes in 8 characters", "é".repeat(8)],
];
const STRING_TOO_LONG: Array<[string, string]> = [["string of 256 bytes", "q".repeat(256)]];

/**
 * One field that takes outside input, and how to push a value into it. `use` may throw
 * (validation while building) or return a promise (run()).
 */
interface Field {
  field: string;
  extra: Array<[string, string]>;
  /** Corpus entries that are legitimate in this field. */
  skip?: string[];
  use: (value: string) => Promise<void> | void;
}

function runTx(fill: (tx: Transaction) => unknown, on: NFTables = nft): Promise<void> {
  const tx = on.newTransaction();
  fill(tx);
  return on.run(tx);
}

const FIELDS: Field[] = [
  {
    field: "table name",
    extra: NAME_TOO_LONG,
    use: (v) =>
      runTx((tx) => tx.add({ kind: "table" }), new NFTables({ family: "inet", table: v, netns: ns.path })),
  },
  {
    field: "table comment",
    extra: COMMENT_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "table", comment: v })),
  },
  {
    field: "chain name",
    extra: NAME_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "chain", name: v })),
  },
  {
    field: "chain name (delete)",
    extra: NAME_TOO_LONG,
    use: (v) => runTx((tx) => tx.delete({ kind: "chain", name: v })),
  },
  {
    field: "chain comment",
    extra: COMMENT_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "chain", name: "c2", comment: v })),
  },
  {
    field: "chain device",
    extra: IFNAME_TOO_LONG,
    use: (v) =>
      runTx((tx) =>
        tx.add({ kind: "chain", name: "ing", type: "filter", hook: "ingress", device: v, priority: 0 }),
      ),
  },
  {
    field: "rule comment",
    extra: COMMENT_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "rule", chain: "c", rule: "accept", comment: v })),
  },
  {
    field: "rule chain",
    extra: NAME_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "rule", chain: v, rule: "accept" })),
  },
  {
    field: "ifname() helper",
    extra: IFNAME_TOO_LONG,
    use: (v) =>
      runTx((tx) => tx.add({ kind: "rule", chain: "c", rule: concat("iifname", ifname(v), "accept") })),
  },
  {
    field: "ifname() helper with wildcard",
    extra: IFNAME_TOO_LONG,
    use: (v) =>
      runTx((tx) =>
        tx.add({ kind: "rule", chain: "c", rule: concat("iifname", ifname(v, "if", true), "accept") }),
      ),
  },
  {
    field: "quoted() helper",
    extra: STRING_TOO_LONG,
    use: (v) =>
      runTx((tx) => tx.add({ kind: "rule", chain: "c", rule: concat("iifname", quoted(v), "accept") })),
  },
  {
    field: "name() helper",
    extra: NAME_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "rule", chain: "c", rule: concat("jump", name(v)) })),
  },
  {
    field: "setRef() helper",
    extra: NAME_TOO_LONG,
    use: (v) =>
      runTx((tx) => tx.add({ kind: "rule", chain: "c", rule: concat("ip saddr", setRef(v), "accept") })),
  },
  {
    field: "plain string in concat()",
    extra: [],
    // Rule text is code: a balanced `{ x }` is an anonymous set, nothing escapes from it.
    skip: ["braces"],
    use: (v) => runTx((tx) => tx.add({ kind: "rule", chain: "c", rule: concat("iifname", v, "accept") })),
  },
  {
    field: "set name",
    extra: NAME_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "set", name: v, type: "ipv4_addr" })),
  },
  {
    field: "set comment",
    extra: COMMENT_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "set", name: "s2", type: "ipv4_addr", comment: v })),
  },
  {
    field: "set type",
    extra: [],
    use: (v) => runTx((tx) => tx.add({ kind: "set", name: "s2", type: `ipv4_addr ${v}` })),
  },
  {
    field: "map name",
    extra: NAME_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "map", name: v, type: "ipv4_addr : verdict" })),
  },
  {
    field: "set name (destroy)",
    extra: NAME_TOO_LONG,
    use: (v) => runTx((tx) => tx.destroy({ kind: "set", name: v, type: "ipv4_addr" })),
  },
  {
    field: "set type (destroy)",
    extra: [],
    use: (v) => runTx((tx) => tx.destroy({ kind: "set", name: "s", type: `ipv4_addr ${v}` })),
  },
  {
    field: "element set name",
    extra: NAME_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "element", set: v, key: ["10.0.0.2"] })),
  },
  {
    field: "element key",
    extra: STRING_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "element", set: "s", key: [v] })),
  },
  {
    field: "element key, quoted",
    extra: STRING_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "element", set: "names", key: [`"${v}"`] })),
  },
  {
    field: "element key in a concatenation",
    extra: STRING_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "element", set: "s", key: ["10.0.0.3", v] })),
  },
  {
    field: "element key (delete)",
    extra: STRING_TOO_LONG,
    use: (v) => runTx((tx) => tx.delete({ kind: "element", set: "s", key: [v] })),
  },
  {
    field: "element value",
    extra: STRING_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "element", map: "m", key: ["10.0.0.4"], value: [v] })),
  },
  {
    field: "element value, quoted",
    extra: STRING_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "element", map: "m", key: ["10.0.0.4"], value: [`"${v}"`] })),
  },
  {
    field: "element verdict target",
    extra: NAME_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "element", map: "m", key: ["10.0.0.4"], value: [`jump ${v}`] })),
  },
  {
    field: "element comment",
    extra: COMMENT_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "element", set: "s", key: ["10.0.0.5"], comment: v })),
  },
  {
    field: "element comment in a batch",
    extra: COMMENT_TOO_LONG,
    use: (v) =>
      runTx((tx) => {
        for (let i = 0; i < 10; i++)
          tx.add({ kind: "element", set: "s", key: [`10.1.0.${i}`], comment: i === 7 ? v : `ok ${i}` });
      }),
  },
  {
    field: "counter name",
    extra: NAME_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "counter", name: v })),
  },
  {
    field: "counter name (reset)",
    extra: NAME_TOO_LONG,
    use: (v) => runTx((tx) => tx.reset({ kind: "counter", name: v })),
  },
  {
    field: "counter comment",
    extra: COMMENT_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "counter", name: "n2", comment: v })),
  },
  {
    field: "flowtable name",
    extra: NAME_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "flowtable", name: v })),
  },
  {
    field: "flowtable device",
    extra: IFNAME_TOO_LONG,
    use: (v) => runTx((tx) => tx.add({ kind: "flowtable", name: "ft", devices: ["lo", v] })),
  },
  { field: "listRules chain", extra: NAME_TOO_LONG, use: async (v) => void (await nft.listRules(v)) },
  {
    field: "listElements set",
    extra: NAME_TOO_LONG,
    use: async (v) => void (await nft.listElements("set", v)),
  },
];

/** Runs one case; returns why it was not refused as it must be, or undefined. */
async function attempt(f: Field, value: string): Promise<string | undefined> {
  try {
    await f.use(value);
  } catch (e) {
    if (e instanceof NftError && e.code === "EINVAL") return undefined;
    return `failed with ${e instanceof NftError ? e.code : String(e)} instead of EINVAL: ${(e as Error).message}`;
  }
  return "was accepted";
}

describe("injection corpus", () => {
  for (const f of FIELDS)
    test(`${f.field}: every hostile value is refused and the ruleset is unchanged`, async () => {
      const wrong: string[] = [];
      for (const [what, value] of [...HOSTILE, ...f.extra]) {
        if (f.skip?.includes(what)) continue;
        const why = await attempt(f, value);
        if (why) wrong.push(`${what} (${JSON.stringify(value.slice(0, 60))}): ${why}`);
      }
      assert.deepEqual(wrong, []);
      assert.ok((await ruleset()) === baseline, `the ruleset changed after ${f.field}`);
    });

  test("names that nft's command line reads as keywords are refused (they could never be listed)", async () => {
    const words = [
      "limits",
      "quotas",
      "counters",
      "chains",
      "tables",
      "sets",
      "maps",
      "meters",
      "flowtables",
    ];
    for (const word of words) {
      assert.throws(
        () => new NFTables({ family: "inet", table: word, netns: ns.path }),
        ValidationError,
        word,
      );
      const why = await attempt(
        FIELDS.find((f) => f.field === "chain name")!,
        word,
      );
      assert.equal(why, undefined, `chain ${word}: ${why}`);
    }
    // Why: nft takes such a table in a file, but not on its command line.
    const probe = await ns.run(["nft", "-f", "-"], { input: "add table inet limits\n" });
    assert.equal(probe.code, 0, probe.stderr);
    const listed = await ns.run(["nft", "list", "table", "inet", "limits"]);
    assert.notEqual(listed.code, 0);
    await ns.sh(["nft", "-f", "-"], "delete table inet limits\n");
    assert.ok((await ruleset()) === baseline);
  });

  test("values exactly at the limits are accepted by the library and by the kernel", async () => {
    const other = new NFTables({ family: "inet", table: "edge", netns: ns.path });
    const name = "a".repeat(255);
    const comment = "é".repeat(64); // 128 bytes
    await runTx(
      (tx) =>
        tx
          .add({ kind: "table", comment })
          .add({ kind: "chain", name, comment })
          .add({
            kind: "rule",
            chain: name,
            rule: concat("iifname", ifname("x".repeat(15)), "accept"),
            comment,
          })
          .add({ kind: "set", name: `s${"b".repeat(254)}`, type: "ifname", comment })
          .add({ kind: "element", set: `s${"b".repeat(254)}`, key: [`"${"q".repeat(15)}"`], comment })
          .add({ kind: "counter", name: "c".repeat(255), comment }),
      other,
    );
    const [rule] = await other.listRules(name, { text: true });
    assert.equal(rule?.comment, comment);
    assert.equal(rule?.rule, `iifname "${"x".repeat(15)}" accept`);
    await runTx((tx) => tx.delete({ kind: "table" }), other);
    assert.ok((await ruleset()) === baseline);
  });

  test("the same fields take ordinary values (the corpus is not refused for another reason)", async () => {
    const ok = FIELDS.filter((f) =>
      [
        "chain name",
        "chain comment",
        "rule comment",
        "ifname() helper",
        "quoted() helper",
        "set name",
        "element key",
        "element comment",
        "counter name",
      ].includes(f.field),
    );
    const values: Record<string, string> = {
      "chain name": "okchain",
      "chain comment": "container 0123456789abcdef",
      "rule comment": "container 0123456789abcdef",
      "ifname() helper": "eth0",
      "quoted() helper": "eth0",
      "set name": "okset",
      "element key": "10.0.0.9",
      "element comment": "pod a/b",
      "counter name": "okcounter",
    };
    for (const f of ok) await f.use(values[f.field]!);
    const after = await ruleset();
    assert.notEqual(after, baseline);
    for (const v of ["okchain", "container 0123456789abcdef", "okset", "10.0.0.9", "pod a/b", "okcounter"])
      assert.ok(after.includes(v), v);
  });
});
