/**
 * The fast readers of nft's JSON listings (src/nftables/json_fast.ts) give what the general path
 * (JSON.parse, then json.ts) gives, for every shape nft prints for what the library writes, and
 * leave everything else to it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { fastElements, fastRules } from "../../src/nftables/json_fast.js";
import { elementsFromJson, parseListing, ruleFromJson } from "../../src/nftables/json.js";

const META =
  '{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}';
const listing = (kind: "set" | "map", type: string, elem: string): string =>
  `{"nftables": [${META}, {"${kind}": {"family": "inet", "name": "s", "table": "t", "type": ${type}, "handle": 1, "elem": [${elem}]}}]}`;

function general(stdout: string, kind: "set" | "map"): ReturnType<typeof elementsFromJson> {
  const body = parseListing(stdout).find(([k]) => k === kind)?.[1];
  return body ? elementsFromJson(kind, "s", body) : [];
}

const CASES: Array<[string, "set" | "map", string]> = [
  ["addresses", "set", '"10.0.0.1", "10.0.0.2"'],
  ["concatenation", "set", '{"concat": ["10.0.0.1", "tcp", 80]}, {"concat": ["fd00::1", "udp", 65535]}'],
  [
    "prefix and range",
    "set",
    '{"prefix": {"addr": "10.0.0.0", "len": 8}}, {"range": ["10.1.0.1", "10.1.0.9"]}',
  ],
  [
    "prefix in a concatenation",
    "set",
    '{"concat": [{"prefix": {"addr": "10.88.0.0", "len": 24}}, "10.88.0.5", "tcp", 80]}',
  ],
  ["strings, quoted when not a bare word", "set", '{"concat": ["eth0", "my if"]}'],
  [
    "wrapped: timeout, expires, comment, counter",
    "set",
    '{"elem": {"val": "10.1.1.1", "timeout": 1800, "expires": 1799, "comment": "c1"}}, {"elem": {"val": "10.1.1.2", "counter": {"packets": 3, "bytes": 180}}}',
  ],
  [
    "map: concatenated key and value",
    "map",
    '[{"concat": ["10.0.0.0", 1024]}, {"concat": ["10.15.66.64", 8080]}], [{"concat": ["tcp", 8080]}, {"concat": ["10.88.0.5", 80]}]',
  ],
  [
    "map: verdicts, a wrapped key",
    "map",
    '[{"concat": ["tcp", 80]}, {"jump": {"target": "guard4-x"}}], [{"elem": {"val": {"concat": ["udp", 53]}, "comment": "owner, net: n"}}, {"accept": null}], ["10.0.0.1", {"goto": {"target": "c"}}]',
  ],
  ["no elements", "set", ""],
  ["big numbers", "set", "4294967295, 70000"],
];

for (const [what, kind, elem] of CASES)
  test(`fast elements = general path: ${what}`, () => {
    const text = listing(kind, kind === "set" ? '"ipv4_addr"' : '["ipv4_addr"]', elem);
    const fast = fastElements(text, kind, "s");
    assert.ok(fast, "read by the fast path");
    assert.deepEqual(fast, general(text, kind));
  });

for (const [what, elem] of [
  ["an escaped quote", '"a\\"b"'],
  ["a fraction", "1.5"],
  ["an unknown object", '{"set": ["a"]}'],
  ["an unknown wrapper field", '{"elem": {"val": "10.0.0.1", "extra": 1}}'],
] as const)
  test(`fast elements leave ${what} to the general path`, () => {
    assert.equal(fastElements(listing("set", '"ipv4_addr"', elem), "set", "s"), undefined);
  });

const RULES = `{"nftables": [${META}, {"chain": {"family": "inet", "table": "t", "name": "c", "handle": 1}}, {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 2, "comment": "rule 1", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.0.0.1"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": 3, "expr": [{"accept": null}]}}]}`;

test("fast rules = general path: handle and comment", () => {
  const general = parseListing(RULES)
    .filter(([k]) => k === "rule")
    .map(([, b]) => ruleFromJson(b));
  assert.deepEqual(fastRules(RULES), general);
  assert.equal(general.length, 2);
});

test("fast rules leave a header of another shape (an escaped comment) to the general path", () => {
  assert.equal(fastRules(RULES.replace('"comment": "rule 1"', '"comment": "a \\"q\\""')), undefined);
});
