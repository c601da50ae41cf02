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

test("addresses and prefixes as nft reads them: dotted quads only, IPv4-mapped IPv6 stays IPv6, canonical", () => {
  assert.equal(address("2001:DB8:0:0::1").toString(), "2001:db8::1");
  assert.equal(address("::ffff:10.0.0.1").toString(), "::ffff:a00:1");
  assert.equal(prefix("2001:db8::1/64").toString(), "2001:db8::1/64");
  assert.equal(prefix("::ffff:10.0.0.0/104").toString(), "::ffff:a00:0/104");
  for (const bad of ["10.1", "0x0a.0.0.1", "fe80::1%eth0", "10.0.0.1/8"])
    assert.throws(() => address(bad), ValidationError, bad);
  for (const bad of ["10.1/8", "10.0.0.0/33", "10.0.0.0", "::/129"])
    assert.throws(() => prefix(bad), ValidationError, bad);
});
