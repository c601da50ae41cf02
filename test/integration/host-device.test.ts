/**
 * host-device on the real kernel, against upstream 1.1.1: a host veth moved into the container by
 * name, MAC or kernel path, renamed, addressed and reached with packets; DEL gives it back under
 * its old name (each side's DEL takes back the other's ADD); an IPAM failure gives it back too;
 * DEL of a gone namespace or link succeeds; bad values change nothing.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { UPSTREAM_BIN, cni, cniOk } from "../helpers/cni.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";

before(sweepStaleNamespaces);

interface Link {
  ifname: string;
  address: string;
  ifalias?: string;
  flags: string[];
  addr_info?: { local: string }[];
}

describe("host-device", () => {
  const nets = new NetnsPool();
  let host: Netns;
  let server: EchoServer;
  let n = 0;
  before(async () => {
    host = await nets.create("hdh");
    // hd<i>'s peer hp<i> stays on the host with 10.81.<i>.1; the echo server listens on all.
    server = await startEchoServer(host, "tcp", "0.0.0.0", 7080);
  });
  after(async () => {
    server?.stop();
    await nets.destroyAll();
  });

  async function device(ns: Netns = host): Promise<{ dev: string; i: number; mac: string }> {
    const i = ++n;
    const dev = `hd${i}`;
    await ns.sh(["ip", "link", "add", dev, "type", "veth", "peer", "name", `hp${i}`]);
    await ns.sh(["ip", "addr", "add", `10.81.${i}.1/24`, "dev", `hp${i}`]);
    await ns.sh(["ip", "link", "set", `hp${i}`, "up"]);
    await ns.sh(["ip", "link", "set", dev, "up"]);
    const mac = (JSON.parse(await ns.sh(["ip", "-j", "link", "show", dev])) as Link[])[0]!.address;
    return { dev, i, mac };
  }
  async function links(ns: Netns): Promise<Link[]> {
    return JSON.parse(await ns.sh(["ip", "-j", "addr", "show"])) as Link[];
  }
  async function linkIn(ns: Netns, name: string): Promise<Link | undefined> {
    const r = await ns.run(["ip", "-j", "-d", "link", "show", "dev", name]);
    return r.code === 0 ? (JSON.parse(r.stdout) as Link[])[0] : undefined;
  }
  const conf = (sel: object, i?: number): Record<string, unknown> => ({
    cniVersion: "1.0.0",
    name: "hdnet",
    type: "host-device",
    ...sel,
    ...(i ? { ipam: { type: "static", addresses: [{ address: `10.81.${i}.2/24` }] } } : {}),
  });

  test("by name: moved, renamed, addressed, reached; each side's DEL gives back the other's ADD", async () => {
    const d = await device();
    const ctr = await nets.create("hdc1");
    const c = conf({ device: d.dev }, d.i);
    const r = await cniOk(host, "host-device", "ADD", c, { containerId: "hd1", netns: ctr.path });
    assert.equal(await linkIn(host, d.dev), undefined);
    const moved = (await linkIn(ctr, "eth0"))!;
    assert.equal(moved.address, d.mac);
    assert.equal(moved.ifalias, d.dev);
    assert.deepEqual(r["interfaces"], [{ name: "eth0", mac: d.mac, sandbox: ctr.path }]);
    assert.equal(await echo(ctr, "tcp", `10.81.${d.i}.1`, 7080), `10.81.${d.i}.2`);
    await cniOk(
      host,
      "host-device",
      "CHECK",
      { ...c, prevResult: r },
      { containerId: "hd1", netns: ctr.path },
    );
    await cniOk(
      host,
      "host-device",
      "CHECK",
      { ...c, prevResult: r },
      { containerId: "hd1", netns: ctr.path, bin: UPSTREAM_BIN },
    );
    await cniOk(host, "host-device", "DEL", c, { containerId: "hd1", netns: ctr.path, bin: UPSTREAM_BIN });
    assert.equal((await linkIn(host, d.dev))?.address, d.mac);

    await cniOk(host, "host-device", "ADD", c, { containerId: "hd1", netns: ctr.path, bin: UPSTREAM_BIN });
    await cniOk(host, "host-device", "DEL", c, { containerId: "hd1", netns: ctr.path });
    const back = (await linkIn(host, d.dev))!;
    assert.equal(back.address, d.mac);
    assert.equal(back.ifalias, undefined); // upstream leaves its alias behind; ours clears it
    assert.equal(await linkIn(ctr, "eth0"), undefined);
    await cniOk(host, "host-device", "DEL", c, { containerId: "hd1", netns: ctr.path }); // gone: success
  });

  test("by MAC and by kernel path; DEL after the namespace is gone succeeds", async () => {
    const d = await device();
    const ctr = await nets.create("hdc2");
    const c = conf({ hwaddr: d.mac.toUpperCase() });
    await cniOk(host, "host-device", "ADD", c, { containerId: "hd2", netns: ctr.path, ifname: "net1" });
    assert.equal((await linkIn(ctr, "net1"))?.address, d.mac);
    await cniOk(host, "host-device", "DEL", c, { containerId: "hd2", netns: ctr.path, ifname: "net1" });
    assert.ok(await linkIn(host, d.dev));

    // A namespace of its own, whose sysfs lists only kp's devices: the first under
    // /sys/devices/virtual/net is the one moved.
    const kh = await nets.create("hdk");
    await kh.sh(["ip", "link", "add", "kp0", "type", "veth", "peer", "name", "kp1"]);
    const kc = await nets.create("hdkc");
    const kconf = conf({ kernelpath: "/sys/devices/virtual" });
    await cniOk(kh, "host-device", "ADD", kconf, { containerId: "hd3", netns: kc.path });
    assert.equal((await linkIn(kc, "eth0"))?.ifalias, "kp0");
    await kc.destroy(); // a virtual device goes with its namespace
    await cniOk(kh, "host-device", "DEL", kconf, { containerId: "hd3", netns: kc.path });
  });

  test("an IPAM failure gives the device back; bad values change nothing", async () => {
    const d = await device();
    const ctr = await nets.create("hdc4");
    const before = JSON.stringify((await links(host)).map((l) => [l.ifname, l.address]));
    const broken = {
      ...conf({ device: d.dev }),
      ipam: { type: "static", addresses: [{ address: "not-an-ip" }] },
    };
    const r = await cni(host, "host-device", "ADD", broken, { containerId: "hd4", netns: ctr.path });
    assert.notEqual(r.code, 0);
    assert.equal(JSON.stringify((await links(host)).map((l) => [l.ifname, l.address])), before);
    assert.equal(await linkIn(ctr, "eth0"), undefined);
    const cases: Array<[object, number, RegExp]> = [
      [{}, 7, /specify either "device", "hwaddr", "kernelpath" or "pciBusID"/],
      [
        { kernelpath: "/etc" },
        7,
        /kernelpath: kernel device path must be absolute and begin with \/sys\/devices\//,
      ],
      [{ kernelpath: "/sys/devices/../../etc" }, 7, /kernelpath/],
      [{ hwaddr: "zz" }, 7, /hwaddr/],
      [{ pciBusID: "0000:00:03" }, 7, /pciBusID/],
      [{ device: "a b" }, 7, /device/],
      [{ device: "nosuch0" }, 999, /failed to find host device/],
      [{ runtimeConfig: { deviceID: "0000:ff:1f.7" } }, 7, /runtime config DeviceID 0000:ff:1f.7 not found/],
    ];
    for (const [sel, code, msg] of cases) {
      const res = await cni(host, "host-device", "ADD", conf(sel), { containerId: "hd4", netns: ctr.path });
      assert.equal(res.json?.["code"], code, JSON.stringify(sel) + res.stdout);
      assert.match(String(res.json?.["msg"]), msg);
    }
    assert.equal(JSON.stringify((await links(host)).map((l) => [l.ifname, l.address])), before);
  });
});
