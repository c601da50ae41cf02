import { test } from "node:test";
import assert from "node:assert/strict";
import { concat, ifname, address, prefix, port, ValidationError } from "../../src/nftables/index.js";

test("concat joins words and validated values", () => {
  assert.equal(
    concat(
      "iifname",
      ifname("veth1"),
      "ip saddr",
      address("10.0.0.1"),
      "ip daddr !=",
      prefix("10.0.0.0/8"),
      "tcp dport",
      port(80),
      "accept",
    ),
    'iifname "veth1" ip saddr 10.0.0.1 ip daddr != 10.0.0.0/8 tcp dport 80 accept',
  );
});

const refused: Array<[string, () => unknown]> = [
  ["quote in ifname", () => ifname('a"b')],
  ["semicolon in text", () => concat("accept; flush ruleset")],
  ["newline in text", () => concat("accept\nflush ruleset")],
  ["comment start", () => concat("accept # x")],
  ["bad address", () => address("10.0.0.256")],
  ["port out of range", () => port(70000)],
  ["unbalanced brace", () => concat("ip saddr { 1.2.3.4")],
];
for (const [what, fn] of refused) test(`refuses ${what}`, () => assert.throws(fn, ValidationError));
