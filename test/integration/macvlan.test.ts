/**
 * macvlan on the real kernel, against upstream 1.1.1: the same link and result for the same
 * config, each side's CHECK and DEL accept the other's ADD; the four modes proved with packets
 * (bridge: siblings talk; private and vepa: they do not, the outside answers both; passthru: one
 * per master); `master` defaulting to the default-route interface; `linkInContainer`; MAC from
 * runtimeConfig; layer 2 only without ipam; bad values refused changing nothing.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { UPSTREAM_BIN, cni, cniOk, tempDir } from "../helpers/cni.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";

before(sweepStaleNamespaces);

interface Link {
  ifname: string;
  ifindex: number;
  mtu: number;
  address: string;
  link_index?: number;
  flags: string[];
  linkinfo?: { info_kind: string; info_data?: { mode?: string } };
}

describe("macvlan", () => {
  const nets = new NetnsPool();
  const dir = tempDir("macvlan");
  let host: Netns;
  let out: Netns;
  let server: EchoServer;
  let n = 0;
  before(async () => {
    host = await nets.create("mvh");
    out = await nets.create("mvo");
    await host.sh(["ip", "link", "add", "up0", "type", "veth", "peer", "name", "out0", "netns", out.path]);
    await host.sh(["ip", "link", "set", "up0", "up"]);
    await out.sh(["ip", "link", "set", "out0", "up"]);
    await out.sh(["ip", "addr", "add", "10.80.0.1/24", "dev", "out0"]);
    await host.sh(["ip", "route", "add", "default", "dev", "up0"]);
    server = await startEchoServer(out, "tcp", "0.0.0.0", 7070);
  });
  after(async () => {
    server?.stop();
    await nets.destroyAll();
    dir.remove();
  });

  const conf = (extra: object, ipam = true): Record<string, unknown> => ({
    cniVersion: "1.0.0",
    name: "mvnet",
    type: "macvlan",
    ...(ipam
      ? {
          ipam: {
            type: "host-local",
            dataDir: `${dir.path}/ipam`,
            ranges: [[{ subnet: "10.80.0.0/24", rangeStart: "10.80.0.10", rangeEnd: "10.80.0.99" }]],
            routes: [{ dst: "0.0.0.0/0" }],
          },
        }
      : {}),
    ...extra,
  });
  async function container(): Promise<{ ns: Netns; id: string }> {
    const ns = await nets.create(`mvc${++n}`);
    return { ns, id: `mvctr${n}` };
  }
  async function link(ns: Netns, name = "eth0"): Promise<Link | undefined> {
    const r = await ns.run(["ip", "-d", "-j", "link", "show", "dev", name]);
    return r.code === 0 ? (JSON.parse(r.stdout) as Link[])[0] : undefined;
  }
  const addr = (r: Record<string, unknown>): string =>
    ((r["ips"] as { address: string }[])[0]!.address ?? "").split("/")[0]!;

  test("same link and result as upstream; CHECK and DEL accept each other's ADD", async () => {
    const a = await container();
    const b = await container();
    const c = conf({ master: "up0", mode: "bridge" });
    const theirs = await cniOk(host, "macvlan", "ADD", c, {
      containerId: a.id,
      netns: a.ns.path,
      bin: UPSTREAM_BIN,
    });
    const ours = await cniOk(host, "macvlan", "ADD", c, { containerId: b.id, netns: b.ns.path });
    const la = (await link(a.ns))!;
    const lb = (await link(b.ns))!;
    const shape = (l: Link): unknown => ({
      kind: l.linkinfo?.info_kind,
      mode: l.linkinfo?.info_data?.mode,
      mtu: l.mtu,
      flags: [...l.flags].sort(),
      parent: l.link_index,
    });
    assert.deepEqual(shape(lb), shape(la));
    const strip = (r: Record<string, unknown>): unknown => ({
      interfaces: (r["interfaces"] as { name: string; sandbox: string }[]).map((i) => i.name),
      ips: (r["ips"] as object[]).length,
      routes: r["routes"],
    });
    assert.deepEqual(strip(ours), strip(theirs));
    assert.equal((ours["interfaces"] as { mac: string }[])[0]!.mac, lb.address);
    // Packets: both reach the outside, and (bridge mode) each other through the master.
    assert.equal(await echo(b.ns, "tcp", "10.80.0.1", 7070), addr(ours));
    const sib = await startEchoServer(a.ns, "tcp", "0.0.0.0", 7071);
    try {
      assert.equal(await echo(b.ns, "tcp", addr(theirs), 7071), addr(ours));
    } finally {
      sib.stop();
    }
    await cniOk(
      host,
      "macvlan",
      "CHECK",
      { ...c, prevResult: theirs },
      { containerId: a.id, netns: a.ns.path },
    );
    await cniOk(
      host,
      "macvlan",
      "CHECK",
      { ...c, prevResult: ours },
      { containerId: b.id, netns: b.ns.path, bin: UPSTREAM_BIN },
    );
    const wrongMode = await cni(
      host,
      "macvlan",
      "CHECK",
      { ...c, mode: "vepa", prevResult: ours },
      { containerId: b.id, netns: b.ns.path },
    );
    assert.match(String(wrongMode.json?.["msg"]), /mode bridge does not match expected value: vepa/);
    await cniOk(host, "macvlan", "DEL", c, { containerId: a.id, netns: a.ns.path });
    await cniOk(host, "macvlan", "DEL", c, { containerId: b.id, netns: b.ns.path, bin: UPSTREAM_BIN });
    await cniOk(host, "macvlan", "DEL", c, { containerId: b.id, netns: b.ns.path }); // gone is success
    assert.equal(await link(a.ns), undefined);
    assert.equal(await link(b.ns), undefined);
  });

  for (const mode of ["private", "vepa"]) {
    test(`${mode}: siblings cannot talk, the outside answers; master defaults to the default-route interface`, async () => {
      const a = await container();
      const b = await container();
      const c = conf({ mode }); // no master: up0 carries the default route
      const ra = await cniOk(host, "macvlan", "ADD", c, { containerId: a.id, netns: a.ns.path });
      const rb = await cniOk(host, "macvlan", "ADD", c, { containerId: b.id, netns: b.ns.path });
      const up0 = (JSON.parse(await host.sh(["ip", "-j", "link", "show", "up0"])) as Link[])[0]!;
      assert.equal((await link(a.ns))!.link_index, up0.ifindex);
      assert.equal((await link(a.ns))!.linkinfo?.info_data?.mode, mode);
      assert.equal(await echo(a.ns, "tcp", "10.80.0.1", 7070), addr(ra));
      const sib = await startEchoServer(a.ns, "tcp", "0.0.0.0", 7072);
      try {
        assert.equal(await echo(b.ns, "tcp", addr(ra), 7072, 1500), undefined);
      } finally {
        sib.stop();
      }
      assert.ok(rb);
      await cniOk(host, "macvlan", "DEL", c, { containerId: a.id, netns: a.ns.path });
      await cniOk(host, "macvlan", "DEL", c, { containerId: b.id, netns: b.ns.path });
    });
  }

  test("passthru: one per master, and it reaches the outside", async () => {
    const a = await container();
    const b = await container();
    const o = await nets.create("mvpo");
    await host.sh(["ip", "link", "add", "pt0", "type", "veth", "peer", "name", "ptout", "netns", o.path]);
    await host.sh(["ip", "link", "set", "pt0", "up"]);
    await o.sh(["ip", "link", "set", "ptout", "up"]);
    await o.sh(["ip", "addr", "add", "10.80.0.1/24", "dev", "ptout"]);
    const srv = await startEchoServer(o, "tcp", "0.0.0.0", 7073);
    try {
      const c = conf({ master: "pt0", mode: "passthru" });
      const ra = await cniOk(host, "macvlan", "ADD", c, { containerId: a.id, netns: a.ns.path });
      assert.equal((await link(a.ns))!.linkinfo?.info_data?.mode, "passthru");
      assert.equal(await echo(a.ns, "tcp", "10.80.0.1", 7073), addr(ra));
      const second = await cni(host, "macvlan", "ADD", c, { containerId: b.id, netns: b.ns.path });
      assert.notEqual(second.code, 0);
      assert.equal(await link(b.ns), undefined);
      await cniOk(host, "macvlan", "DEL", c, { containerId: b.id, netns: b.ns.path });
      await cniOk(host, "macvlan", "DEL", c, { containerId: a.id, netns: a.ns.path });
    } finally {
      srv.stop();
    }
  });

  test("linkInContainer, runtimeConfig MAC, layer 2 only without ipam", async () => {
    const a = await container();
    await a.ns.sh(["ip", "link", "add", "cm0", "type", "veth", "peer", "name", "cm1"]);
    await a.ns.sh(["ip", "link", "set", "cm0", "up"]);
    const c = conf(
      { master: "cm0", linkInContainer: true, runtimeConfig: { mac: "0a:58:0a:50:00:42" } },
      false,
    );
    const r = await cniOk(host, "macvlan", "ADD", c, { containerId: a.id, netns: a.ns.path, ifname: "net1" });
    const l = (await link(a.ns, "net1"))!;
    assert.equal(l.address, "0a:58:0a:50:00:42");
    assert.ok(l.flags.includes("UP"));
    assert.equal(r["ips"], undefined);
    await cniOk(host, "macvlan", "DEL", c, { containerId: a.id, netns: a.ns.path, ifname: "net1" });
    assert.equal(await link(a.ns, "net1"), undefined);
  });

  test("bad values are refused naming the field, nothing is created", async () => {
    const a = await container();
    const cases: Array<[object, number, RegExp]> = [
      [{ master: "up0", mode: "l2" }, 7, /mode/],
      [{ master: "up0", mtu: 9000 }, 7, /invalid MTU 9000, must be \[0, master MTU\(1500\)\]/],
      [{ master: "up0", mac: "not-a-mac" }, 7, /invalid MAC address/],
      [{ master: "nope0" }, 999, /failed to lookup master "nope0"/],
      [{ master: "up0", bcqueuelen: -1 }, 7, /bcqueuelen/],
    ];
    for (const [extra, code, msg] of cases) {
      const r = await cni(host, "macvlan", "ADD", conf(extra), { containerId: a.id, netns: a.ns.path });
      assert.equal(r.json?.["code"], code, JSON.stringify(extra) + r.stdout);
      assert.match(String(r.json?.["msg"]), msg);
      assert.equal(await link(a.ns), undefined);
    }
    const bad = await cni(host, "macvlan", "ADD", conf({ master: "up0" }), {
      containerId: a.id,
      netns: "/tmp/x y",
    });
    assert.equal(bad.json?.["code"], 4);
    const status = { cniVersion: "1.1.0", name: "mvnet", type: "macvlan" };
    await cniOk(host, "macvlan", "STATUS", status, { containerId: "" });
  });
});
