import { test } from "node:test";
import assert from "node:assert/strict";
import {
  convertResult,
  formatResult,
  parseResult,
  compareVersions,
  requireResultAddress,
  CniError,
  type Result,
} from "../../../src/cni/index.js";

const current: Result = {
  cniVersion: "1.1.0",
  interfaces: [
    { name: "cni0", mac: "00:11:22:33:44:55", mtu: 1400 },
    {
      name: "eth0",
      mac: "00:11:22:33:44:66",
      sandbox: "/run/netns/x",
      socketPath: "/s",
      pciID: "0000:00:01.0",
    },
  ],
  ips: [
    { interface: 1, address: "10.1.2.3/24", gateway: "10.1.2.1" },
    { interface: 1, address: "10.1.3.3/24" },
    { interface: 1, address: "fd00::3/64", gateway: "fd00::1" },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "10.1.2.1", mtu: 1300, table: 100 },
    { dst: "::/0", priority: 5 },
  ],
  dns: { nameservers: ["10.1.2.1"] },
};

const cases: { name: string; to: string; want: unknown }[] = [
  {
    name: "1.1.0 keeps every field",
    to: "1.1.0",
    want: {
      cniVersion: "1.1.0",
      interfaces: current.interfaces,
      ips: current.ips,
      routes: current.routes,
      dns: current.dns,
    },
  },
  {
    name: "1.0.0 drops 1.1.0 fields, no ips version",
    to: "1.0.0",
    want: {
      cniVersion: "1.0.0",
      interfaces: [
        { name: "cni0", mac: "00:11:22:33:44:55" },
        { name: "eth0", mac: "00:11:22:33:44:66", sandbox: "/run/netns/x" },
      ],
      ips: current.ips,
      routes: [{ dst: "0.0.0.0/0", gw: "10.1.2.1" }, { dst: "::/0" }],
      dns: current.dns,
    },
  },
  ...["0.3.0", "0.3.1", "0.4.0"].map((to) => ({
    name: `${to} carries ips version`,
    to,
    want: {
      cniVersion: to,
      interfaces: [
        { name: "cni0", mac: "00:11:22:33:44:55" },
        { name: "eth0", mac: "00:11:22:33:44:66", sandbox: "/run/netns/x" },
      ],
      ips: [
        { version: "4", interface: 1, address: "10.1.2.3/24", gateway: "10.1.2.1" },
        { version: "4", interface: 1, address: "10.1.3.3/24" },
        { version: "6", interface: 1, address: "fd00::3/64", gateway: "fd00::1" },
      ],
      routes: [{ dst: "0.0.0.0/0", gw: "10.1.2.1" }, { dst: "::/0" }],
      dns: current.dns,
    },
  })),
  ...["0.1.0", "0.2.0"].map((to) => ({
    name: `${to} gives ip4/ip6 (first of each family, routes by family)`,
    to,
    want: {
      cniVersion: to,
      ip4: { ip: "10.1.2.3/24", gateway: "10.1.2.1", routes: [{ dst: "0.0.0.0/0", gw: "10.1.2.1" }] },
      ip6: { ip: "fd00::3/64", gateway: "fd00::1", routes: [{ dst: "::/0" }] },
      dns: current.dns,
    },
  })),
];

for (const c of cases) {
  test(`formatResult: ${c.name}`, () => {
    assert.deepEqual(formatResult(current, c.to), c.want);
  });
}

test("key order matches libcni (cniVersion, interfaces, ips, routes, dns; version first in ips)", () => {
  const out = JSON.stringify(formatResult(current, "0.4.0"));
  assert.match(out, /^\{"cniVersion":"0.4.0","interfaces":.*"ips":\[\{"version":"4","interface":1,"address"/);
  assert.ok(out.indexOf('"routes"') < out.indexOf('"dns"'));
});

test("dns is always present, empty lists omitted", () => {
  assert.deepEqual(
    formatResult({ cniVersion: "0.4.0", ips: [{ address: "10.0.0.2/24" }], routes: [] }, "0.4.0"),
    {
      cniVersion: "0.4.0",
      ips: [{ version: "4", address: "10.0.0.2/24" }],
      dns: {},
    },
  );
});

test("0.2.0 result → current → 0.4.0 (what libcni does with an old prevResult)", () => {
  const old = {
    cniVersion: "0.2.0",
    ip4: { ip: "10.0.0.5/24", gateway: "10.0.0.1", routes: [{ dst: "0.0.0.0/0" }] },
    ip6: { ip: "fd::5/64" },
    dns: { nameservers: ["1.1.1.1"] },
  };
  assert.deepEqual(convertResult(old, "0.4.0"), {
    cniVersion: "0.4.0",
    ips: [
      { version: "4", address: "10.0.0.5/24", gateway: "10.0.0.1" },
      { version: "6", address: "fd::5/64" },
    ],
    routes: [{ dst: "0.0.0.0/0" }],
    dns: { nameservers: ["1.1.1.1"] },
  });
});

test("0.4.0 prevResult parses into current form (version dropped, interface kept)", () => {
  const r = parseResult({
    cniVersion: "0.4.0",
    interfaces: [{ name: "eth0", sandbox: "/x" }],
    ips: [{ version: "4", interface: 0, address: "10.0.0.2/24" }],
    dns: {},
  });
  assert.deepEqual(r, {
    cniVersion: "0.4.0",
    interfaces: [{ name: "eth0", sandbox: "/x" }],
    ips: [{ interface: 0, address: "10.0.0.2/24" }],
    dns: {},
  });
});

test("round trips 1.1.0 → 0.4.0 → 1.0.0", () => {
  const r = convertResult(convertResult(formatResult(current, "0.4.0"), "1.0.0"), "1.0.0");
  assert.deepEqual(r, formatResult(current, "1.0.0"));
});

const bad: { name: string; raw: unknown; code: number }[] = [
  { name: "not an object", raw: [], code: 6 },
  { name: "ips not a list", raw: { cniVersion: "1.0.0", ips: {} }, code: 6 },
  { name: "ip without address", raw: { cniVersion: "1.0.0", ips: [{ gateway: "1.1.1.1" }] }, code: 6 },
  { name: "route dst missing", raw: { cniVersion: "0.4.0", routes: [{ gw: "1.1.1.1" }] }, code: 6 },
  { name: "unknown version", raw: { cniVersion: "7.0.0" }, code: 1 },
  {
    name: "interface index not integer",
    raw: { cniVersion: "1.0.0", ips: [{ address: "1.2.3.4/32", interface: "x" }] },
    code: 6,
  },
];
for (const b of bad) {
  test(`parseResult refuses: ${b.name}`, () => {
    assert.throws(
      () => parseResult(b.raw),
      (e) => e instanceof CniError && e.code === b.code,
    );
  });
}

test("converting to 0.2.0 without IPs fails", () => {
  assert.throws(() => formatResult({ cniVersion: "1.0.0" }, "0.2.0"), /no valid IP addresses/);
});

test("requireResultAddress: refused (code 7) only before 0.3.0 and only without an address", () => {
  for (const version of ["0.1.0", "0.2.0"]) {
    assert.throws(
      () => requireResultAddress(version, false, "ipam"),
      (e) =>
        e instanceof CniError &&
        e.code === 7 &&
        e.message ===
          `cniVersion ${version} results must carry an IP address and this config has no ipam.type: add an ipam section with a type (e.g. host-local) or use cniVersion 0.3.0 or later`,
    );
    assert.throws(
      () => requireResultAddress(version, false, "prevResult"),
      /and the prevResult has none: chain this plugin after one that assigns an address or use cniVersion 0.3.0 or later/,
    );
    assert.doesNotThrow(() => requireResultAddress(version, true, "ipam"));
  }
  for (const version of ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    assert.doesNotThrow(() => requireResultAddress(version, false, "ipam"));
});

test("requireResultAddress agrees with formatResult: refused exactly where the result cannot be written", () => {
  const withIp: Result = { cniVersion: "1.1.0", ips: [{ address: "fd00::2/64" }] };
  const without: Result = { cniVersion: "1.1.0", interfaces: [{ name: "eth0" }] };
  for (const version of ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    for (const r of [withIp, without]) {
      const has = Boolean(r.ips?.length);
      const writable = ((): boolean => {
        try {
          formatResult(r, version);
          return true;
        } catch {
          return false;
        }
      })();
      const allowed = ((): boolean => {
        try {
          requireResultAddress(version, has, "ipam");
          return true;
        } catch {
          return false;
        }
      })();
      assert.equal(allowed, writable, `${version}, ${has ? "with" : "without"} an address`);
    }
});

test("compareVersions", () => {
  assert.ok(compareVersions("0.3.1", "0.4.0") < 0);
  assert.ok(compareVersions("1.1.0", "1.0.0") > 0);
  assert.equal(compareVersions("1.0.0", "1.0.0"), 0);
  assert.ok(compareVersions("0.10.0", "0.9.0") > 0);
});
