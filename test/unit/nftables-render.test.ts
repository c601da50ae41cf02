import { test } from "node:test";
import assert from "node:assert/strict";
import { NftError, Transaction, type Features, type NftObject, type Verb } from "../../src/nftables/index.js";
import { ALLOWED_VERBS } from "../../src/nftables/objects.js";

const scope = { family: "inet", table: "t" } as const;
const withDestroy: Features = { version: "1.0.9", destroy: true, json: true, objectComments: true };
const noDestroy: Features = { version: "1.0.6", destroy: false, json: true, objectComments: true };

function render(verb: Verb, obj: NftObject, features?: Features): string {
  const tx = new Transaction(scope);
  (tx[verb] as (o: NftObject) => Transaction).call(tx, obj);
  return tx.render(features).text;
}

const table: NftObject = { kind: "table", comment: "tc" };
const chain: NftObject = { kind: "chain", name: "c", comment: "cc" };
const base: NftObject = {
  kind: "chain",
  name: "pre",
  type: "nat",
  hook: "prerouting",
  priority: "dstnat - 10",
  policy: "accept",
};
const ingress: NftObject = {
  kind: "chain",
  name: "ing",
  type: "filter",
  hook: "ingress",
  device: "eth0",
  priority: -150,
};
const set: NftObject = {
  kind: "set",
  name: "s",
  type: "ipv4_addr . inet_service",
  flags: ["interval", "timeout"],
  timeout: 60,
  gcInterval: 10,
  size: 1000,
  policy: "memory",
  autoMerge: true,
  counter: true,
  comment: "sc",
};
const map: NftObject = { kind: "map", name: "m", typeof: "ip saddr : verdict" };
const setElem: NftObject = { kind: "element", set: "s", key: ["10.0.0.1", "80"], timeout: 5, comment: "ec" };
const mapElem: NftObject = { kind: "element", map: "m", key: ["10.0.0.1"], value: ["jump c"] };
const counter: NftObject = { kind: "counter", name: "k", comment: "kc" };
const flowtable: NftObject = {
  kind: "flowtable",
  name: "f",
  priority: "filter + 5",
  devices: ["eth0", "eth1"],
};
const rule = (extra: Partial<Extract<NftObject, { kind: "rule" }>> = {}): NftObject => ({
  kind: "rule",
  chain: "c",
  rule: 'iifname "eth0" accept',
  ...extra,
});

/** [verb, object, expected text, features] */
const rendered: Array<[Verb, NftObject, string, Features?]> = [
  ["add", table, 'add table inet t { comment "tc" ; }'],
  ["create", table, 'create table inet t { comment "tc" ; }'],
  ["delete", table, "delete table inet t"],
  ["destroy", table, "destroy table inet t", withDestroy],
  ["destroy", table, "add table inet t\ndelete table inet t", noDestroy],
  ["flush", table, "flush table inet t"],

  ["add", chain, 'add chain inet t c { comment "cc" ; }'],
  ["create", chain, 'create chain inet t c { comment "cc" ; }'],
  ["add", base, "add chain inet t pre { type nat hook prerouting priority dstnat - 10 ; policy accept ; }"],
  ["add", ingress, 'add chain inet t ing { type filter hook ingress device "eth0" priority -150 ; }'],
  ["delete", chain, "delete chain inet t c"],
  ["delete", base, "delete chain inet t pre"],
  ["destroy", chain, "destroy chain inet t c", withDestroy],
  ["destroy", chain, "add chain inet t c\ndelete chain inet t c", noDestroy],
  ["flush", chain, "flush chain inet t c"],

  ["add", rule(), 'add rule inet t c iifname "eth0" accept'],
  ["add", rule({ comment: "rc" }), 'add rule inet t c iifname "eth0" accept comment "rc"'],
  ["add", rule({ index: 2 }), 'add rule inet t c index 2 iifname "eth0" accept'],
  ["add", rule({ handle: 7 }), 'add rule inet t c handle 7 iifname "eth0" accept'],
  ["insert", rule(), 'insert rule inet t c iifname "eth0" accept'],
  ["insert", rule({ index: 0 }), 'insert rule inet t c index 0 iifname "eth0" accept'],
  ["insert", rule({ handle: 7 }), 'insert rule inet t c handle 7 iifname "eth0" accept'],
  [
    "replace",
    rule({ handle: 7, comment: "x" }),
    'replace rule inet t c handle 7 iifname "eth0" accept comment "x"',
  ],
  ["delete", rule({ handle: 7 }), "delete rule inet t c handle 7"],
  ["destroy", rule({ handle: 7 }), "destroy rule inet t c handle 7", withDestroy],

  [
    "add",
    set,
    'add set inet t s { type ipv4_addr . inet_service ; flags interval,timeout ; timeout 60s ; gc-interval 10s ; size 1000 ; policy memory ; auto-merge ; counter ; comment "sc" ; }',
  ],
  ["create", { kind: "set", name: "s", type: "ifname" }, "create set inet t s { type ifname ; }"],
  ["create", map, "create map inet t m { typeof ip saddr : verdict ; }"],
  ["destroy", map, "destroy map inet t m", withDestroy],
  ["add", map, "add map inet t m { typeof ip saddr : verdict ; }"],
  ["delete", { kind: "set", name: "s" }, "delete set inet t s"],
  ["delete", map, "delete map inet t m"],
  ["destroy", { kind: "set", name: "s" }, "destroy set inet t s", withDestroy],
  ["destroy", map, "add map inet t m { typeof ip saddr : verdict ; }\ndelete map inet t m", noDestroy],
  ["flush", { kind: "set", name: "s" }, "flush set inet t s"],
  ["flush", map, "flush map inet t m"],

  ["add", setElem, 'add element inet t s { 10.0.0.1 . 80 timeout 5s comment "ec" }'],
  ["create", setElem, 'create element inet t s { 10.0.0.1 . 80 timeout 5s comment "ec" }'],
  [
    "add",
    { kind: "element", set: "s", key: ["10.0.0.1", "80"], counter: true, timeout: 5 },
    "add element inet t s { 10.0.0.1 . 80 counter timeout 5s }",
  ],
  ["add", mapElem, "add element inet t m { 10.0.0.1 : jump c }"],
  ["delete", setElem, "delete element inet t s { 10.0.0.1 . 80 }"],
  ["delete", mapElem, "delete element inet t m { 10.0.0.1 }"],
  ["destroy", mapElem, "destroy element inet t m { 10.0.0.1 }", withDestroy],
  [
    "destroy",
    mapElem,
    "add element inet t m { 10.0.0.1 : jump c }\ndelete element inet t m { 10.0.0.1 }",
    noDestroy,
  ],
  [
    "destroy",
    setElem,
    'add element inet t s { 10.0.0.1 . 80 timeout 5s comment "ec" }\ndelete element inet t s { 10.0.0.1 . 80 }',
    noDestroy,
  ],

  ["add", counter, 'add counter inet t k { comment "kc" ; }'],
  ["create", { kind: "counter", name: "k" }, "create counter inet t k"],
  ["delete", counter, "delete counter inet t k"],
  ["destroy", counter, "destroy counter inet t k", withDestroy],
  ["destroy", counter, "add counter inet t k\ndelete counter inet t k", noDestroy],
  ["reset", counter, "reset counter inet t k"],

  [
    "add",
    flowtable,
    'add flowtable inet t f { hook ingress priority filter + 5 ; devices = { "eth0", "eth1" } ; }',
  ],
  [
    "create",
    { kind: "flowtable", name: "f" },
    "create flowtable inet t f { hook ingress priority filter ; }",
  ],
  ["delete", flowtable, "delete flowtable inet t f"],
  ["destroy", flowtable, "destroy flowtable inet t f", withDestroy],
  [
    "destroy",
    flowtable,
    'add flowtable inet t f { hook ingress priority filter + 5 ; devices = { "eth0", "eth1" } ; }\ndelete flowtable inet t f',
    noDestroy,
  ],
];

for (const [verb, obj, text, features] of rendered) {
  const label = features ? ` (nft ${features.version})` : "";
  test(`render: ${verb} ${obj.kind} → ${text.split("\n")[0]}${label}`, () => {
    assert.equal(render(verb, obj, features), text + "\n");
  });
}

test("render: every allowed verb of every kind is covered above", () => {
  for (const [kind, verbs] of Object.entries(ALLOWED_VERBS))
    for (const verb of verbs)
      assert.ok(
        rendered.some(([v, o]) => v === verb && o.kind === kind),
        `${verb} ${kind} has no rendering case`,
      );
});

const ALL_VERBS: Verb[] = ["add", "create", "insert", "replace", "delete", "destroy", "flush", "reset"];
const samples: NftObject[] = [
  table,
  chain,
  rule({ handle: 1 }),
  set,
  map,
  setElem,
  mapElem,
  counter,
  flowtable,
];

for (const obj of samples)
  for (const verb of ALL_VERBS.filter((v) => !ALLOWED_VERBS[obj.kind].includes(v)))
    test(`render: ${verb} ${obj.kind} is refused`, () => {
      const tx = new Transaction(scope);
      (tx[verb] as (o: NftObject) => Transaction).call(tx, obj);
      assert.ok(tx.error instanceof NftError);
      assert.equal(tx.error.code, "EINVAL");
      assert.equal(tx.error.operationIndex, 0);
      assert.throws(() => tx.render(), /cannot/);
    });

test("render: destroy of a rule is refused where nft has no destroy", () => {
  const tx = new Transaction(scope).destroy(rule({ handle: 3 }));
  assert.throws(
    () => tx.render(noDestroy),
    (e: unknown) => e instanceof NftError && e.code === "EINVAL",
  );
});

test("render: emulated destroy of a set needs its type (nft refuses to add it with another)", () => {
  const tx = new Transaction(scope).destroy({ kind: "set", name: "s" });
  assert.equal(tx.render(withDestroy).text, "destroy set inet t s\n");
  assert.throws(() => tx.render(noDestroy), /type/);
});

test("render: emulated destroy of a map element needs its value", () => {
  const tx = new Transaction(scope).destroy({ kind: "element", map: "m", key: ["10.0.0.1"] });
  assert.equal(tx.render(withDestroy).text, "destroy element inet t m { 10.0.0.1 }\n");
  assert.throws(() => tx.render(noDestroy), /needs its value/);
});

test("render: invalid input is recorded with its operation, and nothing renders", () => {
  const tx = new Transaction(scope)
    .add({ kind: "table" })
    .add({ kind: "chain", name: "ok" })
    .add({ kind: "rule", chain: "ok", rule: "accept; flush ruleset" })
    .add({ kind: "chain", name: "bad name" });
  assert.equal(tx.error?.operationIndex, 2);
  assert.equal(tx.error?.operation, tx.operations[2]);
  assert.throws(() => tx.render(), /operation 3 \(add rule\)/);
});

test("render: consecutive elements of one set are batched, others are not", () => {
  const tx = new Transaction(scope);
  tx.add({ kind: "element", set: "a", key: ["1.1.1.1"] });
  tx.add({ kind: "element", set: "a", key: ["1.1.1.2"], comment: "two" });
  tx.add({ kind: "element", set: "b", key: ["1.1.1.3"] });
  tx.delete({ kind: "element", set: "b", key: ["1.1.1.4"] });
  tx.delete({ kind: "element", set: "b", key: ["1.1.1.5"] });
  tx.add({ kind: "element", set: "a", key: ["1.1.1.6"] });
  assert.equal(
    tx.render().text,
    [
      'add element inet t a { 1.1.1.1, 1.1.1.2 comment "two" }',
      "add element inet t b { 1.1.1.3 }",
      "delete element inet t b { 1.1.1.4, 1.1.1.5 }",
      "add element inet t a { 1.1.1.6 }",
      "",
    ].join("\n"),
  );
});

test("render: batches hold at most 1000 elements", () => {
  const tx = new Transaction(scope);
  for (let i = 0; i < 2500; i++) tx.add({ kind: "element", set: "s", key: [String(i)] });
  const lines = tx.render().text.trimEnd().split("\n");
  assert.equal(lines.length, 3);
  assert.equal(lines.map((l) => l.split(", ").length).join(","), "1000,1000,500");
  assert.ok(lines[2]!.startsWith("add element inet t s { 2000, 2001,"));
});

test("render: nft's error line and column map back to the operation", () => {
  const tx = new Transaction(scope);
  tx.add({ kind: "table" }); // op 0, line 1
  tx.add({ kind: "element", set: "s", key: ["10.0.0.1"] }); // op 1, line 2
  tx.add({ kind: "element", set: "s", key: ["10.0.0.22"] }); // op 2
  tx.add({ kind: "element", set: "s", key: ["10.0.0.3"] }); // op 3
  tx.add({ kind: "rule", chain: "c", rule: "accept" }); // op 4, line 3
  const r = tx.render();
  const line2 = r.text.split("\n")[1]!;
  assert.equal(line2, "add element inet t s { 10.0.0.1, 10.0.0.22, 10.0.0.3 }");
  // columns are 1-based, as in nft's "/dev/stdin:2:36-44: Error: ..."
  const col = (needle: string): number => line2.indexOf(needle) + 1;
  const cases: Array<[number, number, number | undefined]> = [
    [1, 1, 0],
    [1, 15, 0],
    [2, col("10.0.0.1"), 1],
    [2, col("10.0.0.1") + 7, 1],
    [2, col("10.0.0.22"), 2],
    [2, col("10.0.0.22") + 8, 2],
    [2, col("10.0.0.3"), 3],
    [2, 1, 1], // the command head points at its first element
    [3, 5, 4],
    [4, 1, undefined],
  ];
  for (const [line, column, op] of cases)
    assert.equal(tx.operationAt(r, line, column), op, `line ${line} column ${column}`);
});

test("render: emulated destroy maps both of its lines to the operation", () => {
  const tx = new Transaction(scope).add({ kind: "table" }).destroy({ kind: "chain", name: "c" });
  const r = tx.render(noDestroy);
  assert.equal(r.text, "add table inet t\nadd chain inet t c\ndelete chain inet t c\n");
  assert.equal(tx.operationAt(r, 2, 1), 1);
  assert.equal(tx.operationAt(r, 3, 20), 1);
});

test("render: a queued object is a copy, so later changes by the caller do not leak in", () => {
  const key = ["10.0.0.1"];
  const obj = { kind: "element" as const, set: "s", key };
  const tx = new Transaction(scope).add(obj);
  key[0] = "10.0.0.2";
  assert.equal(tx.render().text, "add element inet t s { 10.0.0.1 }\n");
});
