// rootless: needs no network namespace and no root (scripts/test.sh runs it for every user)
/** static IPAM through the real executable, compared with upstream's on the same inputs. */
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ensureBuilt, execPlugin, OUR_BIN, UPSTREAM_BIN } from "../helpers/cni.js";

before(ensureBuilt);

const base = { name: "s", type: "macvlan" };
const cases: { name: string; conf: Record<string, unknown>; args?: string; command?: string }[] = [
  {
    name: "addresses, routes, dns",
    conf: {
      cniVersion: "0.4.0",
      ipam: {
        type: "static",
        addresses: [{ address: "10.0.0.5/24", gateway: "10.0.0.1" }, { address: "fd::5/64" }],
        routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.0.0/16", gw: "10.0.0.254" }],
        dns: { nameservers: ["1.1.1.1"], domain: "x", search: ["y"] },
      },
    },
  },
  {
    name: "CNI_ARGS IP and GATEWAY",
    conf: { cniVersion: "1.0.0", ipam: { type: "static" } },
    args: "IP=10.1.1.1/24,fd1::1/64;GATEWAY=10.1.1.254",
  },
  {
    name: "args.cni.ips replace addresses",
    conf: {
      cniVersion: "1.0.0",
      args: { cni: { ips: ["10.2.2.2/16"] } },
      ipam: { type: "static", addresses: [{ address: "10.0.0.5/24" }] },
    },
  },
  {
    name: "runtimeConfig.ips",
    conf: { cniVersion: "1.0.0", runtimeConfig: { ips: ["10.3.3.3/8"] }, ipam: { type: "static" } },
  },
  {
    name: "runtimeConfig.ips not CIDR",
    conf: { cniVersion: "1.0.0", runtimeConfig: { ips: ["10.3.3.3"] }, ipam: { type: "static" } },
  },
  {
    name: "0.2.0 with two v4",
    conf: {
      cniVersion: "0.2.0",
      ipam: { type: "static", addresses: [{ address: "10.0.0.5/24" }, { address: "10.0.0.6/24" }] },
    },
  },
  {
    name: "0.2.0 single",
    conf: {
      cniVersion: "0.2.0",
      ipam: {
        type: "static",
        addresses: [{ address: "10.0.0.5/24", gateway: "10.0.0.1" }],
        routes: [{ dst: "0.0.0.0/0" }],
      },
    },
  },
  { name: "no addresses", conf: { cniVersion: "0.4.0", ipam: { type: "static" } } },
  { name: "DEL", conf: { cniVersion: "0.4.0", ipam: { type: "static" } }, command: "DEL" },
  {
    name: "CHECK with prevResult",
    conf: {
      cniVersion: "0.4.0",
      ipam: { type: "static", addresses: [{ address: "10.0.0.5/24" }] },
      prevResult: { cniVersion: "0.4.0", ips: [{ version: "4", address: "10.0.0.5/24" }] },
    },
    command: "CHECK",
  },
  {
    name: "CHECK without prevResult",
    conf: { cniVersion: "0.4.0", ipam: { type: "static", addresses: [{ address: "10.0.0.5/24" }] } },
    command: "CHECK",
  },
];

for (const c of cases) {
  test(`static like upstream: ${c.name}`, async () => {
    const env = {
      CNI_COMMAND: c.command ?? "ADD",
      CNI_CONTAINERID: "c1",
      CNI_NETNS: "/run/netns/x",
      CNI_IFNAME: "eth0",
      CNI_PATH: OUR_BIN,
      CNI_ARGS: c.args ?? "",
    };
    const conf = { ...base, ...c.conf };
    const us = await execPlugin(join(OUR_BIN, "static"), env, conf);
    const up = await execPlugin(join(UPSTREAM_BIN, "static"), env, conf);
    assert.equal(us.code, up.code, `${us.stdout} vs ${up.stdout}`);
    if (up.code === 0) assert.deepEqual(us.json ?? null, up.json ?? null);
    else assert.equal(us.json?.msg, up.json?.msg);
  });
}
