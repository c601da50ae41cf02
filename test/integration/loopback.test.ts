import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { UPSTREAM_BIN, cniOk } from "../helpers/cni.js";

const nets = new NetnsPool();
let host: Netns, c1: Netns, c2: Netns;
before(async () => {
  await sweepStaleNamespaces();
  [host, c1, c2] = (await Promise.all(["h", "a", "b"].map((t) => nets.create(`lo${t}`)))) as [
    Netns,
    Netns,
    Netns,
  ];
  await c1.sh(["ip", "link", "set", "lo", "down"]);
  await c2.sh(["ip", "link", "set", "lo", "down"]);
});
after(() => nets.destroyAll());

const conf = { cniVersion: "1.0.0", name: "lo", type: "loopback" };

test("loopback: lo up on ADD with the same result as upstream, down on DEL, DEL twice fine", async () => {
  const ours = await cniOk(host, "loopback", "ADD", conf, {
    containerId: "l1",
    netns: c1.path,
    ifname: "lo",
  });
  const theirs = await cniOk(host, "loopback", "ADD", conf, {
    containerId: "l2",
    netns: c2.path,
    ifname: "lo",
    bin: UPSTREAM_BIN,
  });
  const norm = (r: Record<string, unknown>, ns: Netns): string =>
    JSON.stringify(r).replaceAll(ns.path, "NETNS");
  assert.equal(norm(ours, c1), norm(theirs, c2));
  assert.match(await c1.sh(["ip", "link", "show", "lo"]), /UP/);
  await cniOk(
    host,
    "loopback",
    "CHECK",
    { ...conf, prevResult: ours },
    { containerId: "l1", netns: c1.path, ifname: "lo" },
  );
  await cniOk(host, "loopback", "DEL", conf, { containerId: "l1", netns: c1.path, ifname: "lo" });
  await cniOk(host, "loopback", "DEL", conf, { containerId: "l1", netns: "", ifname: "lo" });
  assert.doesNotMatch(await c1.sh(["ip", "link", "show", "lo"]), /<[^>]*\bUP\b/);
});

test("chained (prevResult given), loopback answers with the prevResult, as upstream's", async () => {
  const prevResult = {
    cniVersion: "1.0.0",
    interfaces: [{ name: "eth0", sandbox: "/x" }],
    ips: [{ address: "10.232.0.5/24", gateway: "10.232.0.1", interface: 0 }],
    routes: [{ dst: "0.0.0.0/0" }],
    dns: { nameservers: ["10.232.0.1"] },
  };
  for (const c of [
    { ...conf, prevResult },
    {
      ...conf,
      cniVersion: "0.4.0",
      prevResult: { ...prevResult, cniVersion: "0.4.0", ips: [{ ...prevResult.ips[0], version: "4" }] },
    },
  ]) {
    const [ours, theirs] = await addBoth(c);
    assert.deepEqual(ours, theirs, JSON.stringify(c));
    assert.deepEqual(ours["ips"], [
      { ...prevResult.ips[0], ...(c.cniVersion === "0.4.0" ? { version: "4" } : {}) },
    ]);
  }
});

test("under 0.1.0, 0.2.0 and no cniVersion: ip4/ip6 of lo, the addresses upstream reports", async () => {
  for (const c of [
    { ...conf, cniVersion: "0.1.0" },
    { ...conf, cniVersion: "0.2.0" },
    { name: "lo", type: "loopback" },
  ]) {
    const [ours, theirs] = await addBoth(c);
    // With the version set, upstream prints its current-form result under it (interfaces, ips),
    // which a 0.2.0 reader sees as no address at all; without one, the 0.1.0 form. Ours is always
    // the version's form, with the addresses upstream reports.
    const ips = theirs["ips"] as Array<{ address: string }> | undefined;
    const v01 = theirs as { ip4?: { ip: string }; ip6?: { ip: string } };
    const addresses = ips ? ips.map((ip) => ip.address) : [v01.ip4?.ip, v01.ip6?.ip];
    assert.deepEqual(addresses, ["127.0.0.1/8", "::1/128"]);
    if (!("cniVersion" in c)) assert.deepEqual(ours, theirs);
    assert.deepEqual(ours, {
      cniVersion: "cniVersion" in c ? c.cniVersion : "0.1.0",
      ip4: { ip: "127.0.0.1/8" },
      ip6: { ip: "::1/128" },
      dns: {},
    });
  }
});

/** ADD of `c` by ours in c1 and by upstream 1.1.1 in c2, each with lo down first. */
async function addBoth(c: object): Promise<[Record<string, unknown>, Record<string, unknown>]> {
  const out: Record<string, unknown>[] = [];
  for (const [ns, bin] of [
    [c1, undefined],
    [c2, UPSTREAM_BIN],
  ] as const) {
    await ns.sh(["ip", "link", "set", "lo", "down"]);
    const call = { containerId: "lv", netns: ns.path, ifname: "lo", ...(bin ? { bin } : {}) };
    const r = await cniOk(host, "loopback", "ADD", c, call);
    out.push(JSON.parse(JSON.stringify(r).replaceAll(ns.path, "NETNS")) as Record<string, unknown>);
    assert.match(await ns.sh(["ip", "link", "show", "lo"]), /<[^>]*\bUP\b/);
  }
  return [out[0]!, out[1]!];
}
