import { test } from "node:test";
import assert from "node:assert/strict";
import {
  addressOf,
  contains,
  familyOf,
  formatCIDR,
  formatIP,
  gatewayFor,
  hostPrefix,
  ipAdd,
  isBroadcastMac,
  isCIDR,
  isIP,
  isMac,
  isMulticastMac,
  isZeroMac,
  lastOf,
  networkOf,
  parseCIDR,
  parseIP,
  parseMac,
  subnetOf,
  unicastMacProblem,
} from "../../../src/address/index.js";

test("IP parsing follows Go: dotted quads only, IPv4-mapped IPv6 is IPv4, no zones", () => {
  assert.deepEqual(parseIP("10.0.0.1"), { family: 4, value: 0x0a000001n });
  assert.deepEqual(parseIP("::ffff:10.0.0.1"), { family: 4, value: 0x0a000001n });
  assert.equal(parseIP("fd00::1")?.family, 6);
  for (const bad of ["10.1", "0x0a.0.0.1", "fe80::1%eth0", "", "1.2.3.4/32", "::g"])
    assert.equal(parseIP(bad), null, bad);
  assert.equal(isIP("fd00::1"), true);
  assert.equal(isCIDR("10.0.0.1/33"), false);
  assert.equal(isCIDR("::ffff:10.0.0.1/120"), false);
  assert.equal(isCIDR("10.0.0.1/32"), true);
});

test("printing is canonical (RFC 5952 for IPv6)", () => {
  assert.equal(formatIP(parseIP("2001:0DB8:0:0:0:0:0:1")!), "2001:db8::1");
  assert.equal(formatCIDR(parseCIDR("10.88.0.5/24")!), "10.88.0.5/24");
  assert.equal(addressOf("2001:db8:0::5/64"), "2001:db8::5");
  assert.equal(hostPrefix("10.88.0.5/24"), "10.88.0.5/32");
  assert.equal(hostPrefix("fd00:0::5"), "fd00::5/128");
});

test("network, last address, containment and the gateway upstream picks", () => {
  const c = parseCIDR("10.88.0.5/24")!;
  assert.equal(formatIP(networkOf(c)), "10.88.0.0");
  assert.equal(formatIP(lastOf(c)), "10.88.0.255");
  assert.equal(contains(c, parseIP("10.88.0.200")!), true);
  assert.equal(contains(c, parseIP("10.88.1.1")!), false);
  assert.equal(contains(c, parseIP("fd00::1")!), false);
  assert.equal(subnetOf("10.88.0.5/24"), "10.88.0.0/24");
  assert.equal(subnetOf("fd00:1:2:3:4::5/64"), "fd00:1:2:3::/64");
  assert.equal(subnetOf("10.0.0.1/0"), "0.0.0.0/0");
  assert.equal(gatewayFor("10.88.0.5/24"), "10.88.0.1");
  assert.equal(gatewayFor("fd00::5/64"), "fd00::1");
  assert.equal(formatIP(ipAdd(parseIP("255.255.255.255")!, 1n)), "0.0.0.0");
  assert.throws(() => subnetOf("nonsense"), TypeError);
});

test("family as libcni decides it", () => {
  assert.equal(familyOf("10.0.0.1/24"), 4);
  assert.equal(familyOf("::ffff:10.0.0.1"), 4);
  assert.equal(familyOf("fd00::1/64"), 6);
  assert.equal(familyOf("::/0"), 6);
});

test("MACs in Go's three forms, printed lower case with colons", () => {
  assert.equal(parseMac("0A:58:0a:00:00:01"), "0a:58:0a:00:00:01");
  assert.equal(parseMac("0a-58-0a-00-00-01"), "0a:58:0a:00:00:01");
  assert.equal(parseMac("0a58.0a00.0001"), "0a:58:0a:00:00:01");
  for (const bad of ["0a:58-0a:00:00:01", "0a:58:0a:00:00", "0a:58:0a:00:00:01:02", "zz:58:0a:00:00:01", ""])
    assert.equal(isMac(bad), false, bad);
});

test("MACs an interface cannot have are named", () => {
  assert.equal(isZeroMac("00:00:00:00:00:00"), true);
  assert.equal(isBroadcastMac("ff:ff:ff:ff:ff:ff"), true);
  assert.equal(isMulticastMac("01:00:5e:00:00:01"), true);
  assert.equal(isMulticastMac("0a:58:0a:00:00:01"), false);
  assert.equal(unicastMacProblem("0a:58:0a:00:00:01"), undefined);
  assert.equal(unicastMacProblem("00-00-00-00-00-00"), "is the all-zero address");
  assert.equal(unicastMacProblem("ffff.ffff.ffff"), "is the broadcast address");
  assert.equal(unicastMacProblem("33:33:00:00:00:01"), "is a multicast address");
  assert.equal(unicastMacProblem("x"), "is not a MAC address");
});
