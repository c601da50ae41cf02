/**
 * sbr on the real kernel, against upstream 1.1.1: the same rules and tables for the same
 * dual-stack interface (with and without addSourceHints and `table`), each side's DEL removes the
 * other's rules; packets prove it: a client behind the second interface's router gets answers only
 * once sbr sends replies from that address back out that interface.
 */
import { after, before, describe, test } from "node:test";
import { existsSync } from "node:fs";
import assert from "node:assert/strict";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { UPSTREAM_BIN, cni, cniOk } from "../helpers/cni.js";
import { echo, startEchoServer } from "../helpers/echo.js";

before(sweepStaleNamespaces);

/** addSourceHints, `table` and `gateways` came after 1.1.1: compared with a current build when present. */
const CURRENT_UPSTREAM = "/tmp/upstream-cni/bin";

describe("sbr", () => {
  const nets = new NetnsPool();
  let host: Netns;
  before(async () => {
    host = await nets.create("sbh");
  });
  after(() => nets.destroyAll());

  /** A container with eth0 (10.1.0.5/24, default via 10.1.0.1) and net1 (192.168.1.5/24, fd00:1::5/64). */
  async function container(tag: string): Promise<Netns> {
    const c = await nets.create(tag);
    for (const [dev, peer] of [
      ["eth0", "p0"],
      ["net1", "p1"],
    ]) {
      await c.sh(["ip", "link", "add", dev!, "type", "veth", "peer", "name", peer!]);
      await c.sh(["ip", "link", "set", dev!, "up"]);
      await c.sh(["ip", "link", "set", peer!, "up"]);
    }
    await c.sh(["ip", "addr", "add", "10.1.0.5/24", "dev", "eth0"]);
    await c.sh(["ip", "addr", "add", "192.168.1.5/24", "dev", "net1"]);
    await c.sh(["ip", "addr", "add", "fd00:1::5/64", "dev", "net1", "nodad"]);
    await c.sh(["ip", "route", "add", "default", "via", "10.1.0.1"]);
    await c.sh(["ip", "route", "add", "172.16.0.0/16", "via", "192.168.1.1"]);
    await linkLocalSettled(c);
    return c;
  }
  /**
   * The kernel gives each link its fe80:: address (and local route) some time after it is up;
   * sbr copies the interface's routes (fe80::/64 too), so both sides must start settled.
   */
  async function linkLocalSettled(c: Netns): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const out = await c.sh(["ip", "-6", "-o", "addr", "show", "scope", "link", "-tentative"]);
      if (out.split("\n").filter((l) => l.includes("fe80::")).length >= 4) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("link-local addresses of the container's links did not settle in 10 s");
  }
  async function state(c: Netns): Promise<string> {
    const parts = await Promise.all([
      c.sh(["ip", "rule"]),
      c.sh(["ip", "-6", "rule"]),
      c.sh(["ip", "route", "show", "table", "all"]),
      c.sh(["ip", "-6", "route", "show", "table", "all"]),
    ]);
    return parts.map(settled).join("---\n");
  }
  /**
   * A listing without the link-local addresses' local routes (they come from each container's
   * random MACs), its lines sorted: routes of one prefix on several links (fe80::/64, ff00::/8)
   * are listed in the order the links got their link-local addresses (DAD), which differs
   * between containers.
   */
  function settled(listing: string): string {
    const lines = listing.split("\n").filter((l) => l && !l.startsWith("local fe80::"));
    return lines.sort().join("\n") + "\n";
  }
  const prev = (c: Netns): object => ({
    cniVersion: "1.0.0",
    interfaces: [
      { name: "eth0", sandbox: c.path },
      { name: "net1", sandbox: c.path },
    ],
    ips: [
      { address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 0 },
      { address: "192.168.1.5/24", gateway: "192.168.1.1", interface: 1 },
      { address: "fd00:1::5/64", gateway: "fd00:1::1", interface: 1 },
    ],
  });
  const conf = (c: Netns, extra: object = {}): object => ({
    cniVersion: "1.0.0",
    name: "sbnet",
    type: "sbr",
    prevResult: prev(c),
    ...extra,
  });
  const call = (c: Netns, bin?: string): object => ({
    containerId: "sb1",
    netns: c.path,
    ifname: "net1",
    ...(bin ? { bin } : {}),
  });

  const current = existsSync(`${CURRENT_UPSTREAM}/sbr`);
  for (const [what, extra, oracle] of [
    ["tables per address", {}, UPSTREAM_BIN],
    ["addSourceHints", { addSourceHints: true }, CURRENT_UPSTREAM],
    ["a given table", { table: 500 }, CURRENT_UPSTREAM],
    ["static gateways", { gateways: ["192.168.1.254", "fd00:1::fe"] }, CURRENT_UPSTREAM],
  ] as Array<[string, object, string]>) {
    const skip = oracle === CURRENT_UPSTREAM && !current;
    test(
      `same rules and routes as upstream: ${what}; each side's DEL removes the other's rules`,
      { skip },
      async () => {
        const a = await container("sba");
        const b = await container("sbb");
        const pristine = await state(b);
        const theirs = await cniOk(host, "sbr", "ADD", conf(a, extra), call(a, oracle) as never);
        const ours = await cniOk(host, "sbr", "ADD", conf(b, extra), call(b) as never);
        assert.deepEqual(ours["ips"], theirs["ips"]); // prevResult passed on
        assert.equal(await state(b), await state(a));
        await cniOk(host, "sbr", "CHECK", conf(b, extra), call(b) as never);
        await cniOk(host, "sbr", "DEL", conf(a, extra), call(a) as never);
        await cniOk(host, "sbr", "DEL", conf(b, extra), call(b, oracle) as never);
        assert.equal(await state(b), await state(a));
        const rules = (await b.sh(["ip", "rule"])) + (await b.sh(["ip", "-6", "rule"]));
        assert.equal(settled(rules), settled(pristine.split("---\n").slice(0, 2).join("")));
      },
    );
  }

  test("replies from net1's address leave by net1: a client behind its router is answered", async () => {
    const c = await container("sbc");
    // r1 routes 172.30.0.0/24 (the client) to the container's net1; eth0's side has no route back.
    const r1 = await nets.create("sbr1");
    const client = await nets.create("sbcl");
    await c.sh(["ip", "link", "set", "p1", "netns", r1.path]);
    await r1.sh(["ip", "link", "set", "p1", "up"]);
    await r1.sh(["ip", "addr", "add", "192.168.1.1/24", "dev", "p1"]);
    await r1.sh(["ip", "link", "add", "rc0", "type", "veth", "peer", "name", "cl0", "netns", client.path]);
    await r1.sh(["ip", "link", "set", "rc0", "up"]);
    await r1.sh(["ip", "addr", "add", "172.30.0.1/24", "dev", "rc0"]);
    await r1.sh(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    await client.sh(["ip", "link", "set", "cl0", "up"]);
    await client.sh(["ip", "addr", "add", "172.30.0.9/24", "dev", "cl0"]);
    await client.sh(["ip", "route", "add", "default", "via", "172.30.0.1"]);
    const server = await startEchoServer(c, "tcp", "0.0.0.0", 7090);
    try {
      assert.equal(await echo(client, "tcp", "192.168.1.5", 7090, 1500), undefined); // replies go to eth0
      await cniOk(host, "sbr", "ADD", conf(c), call(c) as never);
      assert.equal(await echo(client, "tcp", "192.168.1.5", 7090), "172.30.0.9");
      await cniOk(host, "sbr", "DEL", conf(c), call(c) as never);
      assert.doesNotMatch(await c.sh(["ip", "rule"]), /192\.168\.1\.5/);
    } finally {
      server.stop();
    }
  });

  test("bad values are refused with code 7, nothing changes; DEL of a gone namespace succeeds", async () => {
    const c = await container("sbd");
    const before = await state(c);
    const cases: Array<[object, RegExp]> = [
      [
        { gateways: ["10.0.0.1", "10.0.0.2"] },
        /gateways list contains multiple IPv4 addresses: 10.0.0.1 and 10.0.0.2/,
      ],
      [{ gateways: ["10.0.0.1", "fd00::1", "fd00::2"] }, /cannot contain more than 2 entries/],
      [{ gateways: ["nope"] }, /gateways\[0\]/],
      [{ table: "main" }, /table/],
      [{ prevResult: undefined }, /Required prevResult missing/],
    ];
    for (const [extra, msg] of cases) {
      const r = await cni(host, "sbr", "ADD", conf(c, extra), call(c) as never);
      assert.equal(r.json?.["code"], 7, JSON.stringify(extra) + r.stdout);
      assert.match(String(r.json?.["msg"]), msg);
    }
    assert.equal(await state(c), before);
    const gone = await nets.create("sbgone");
    const path = gone.path;
    await gone.destroy();
    await cniOk(
      host,
      "sbr",
      "DEL",
      { cniVersion: "1.0.0", name: "sbnet", type: "sbr" },
      { containerId: "x", netns: path, ifname: "net1" },
    );
    await cniOk(
      host,
      "sbr",
      "STATUS",
      { cniVersion: "1.1.0", name: "sbnet", type: "sbr" },
      { containerId: "" },
    );
  });
});
