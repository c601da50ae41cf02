/**
 * tap on the real kernel: a persistent tap made in the container's namespace with the configured
 * MTU, MAC (config, CNI_ARGS, runtimeConfig), queues, owner and group, a port of a bridge there,
 * addressed by IPAM; DEL removes it (gone is success); bad values change nothing. Upstream 1.1.1
 * has no tap: when a current upstream build is in /tmp/upstream-cni/bin its device is compared too.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { cni, cniOk } from "../helpers/cni.js";

before(sweepStaleNamespaces);

const CURRENT_UPSTREAM = "/tmp/upstream-cni/bin";

interface Link {
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  master?: string;
  linkinfo?: { info_kind: string; info_data?: Record<string, unknown> };
  addr_info?: { local: string }[];
}

describe("tap", () => {
  const nets = new NetnsPool();
  let host: Netns;
  let ctr: Netns;
  before(async () => {
    host = await nets.create("taph");
    ctr = await nets.create("tapc");
    await ctr.sh(["ip", "link", "add", "br9", "type", "bridge"]);
  });
  after(() => nets.destroyAll());

  async function link(name: string): Promise<Link | undefined> {
    const r = await ctr.run(["ip", "-d", "-j", "addr", "show", "dev", name]);
    return r.code === 0 ? (JSON.parse(r.stdout) as Link[])[0] : undefined;
  }
  const conf = (extra: object): Record<string, unknown> => ({
    cniVersion: "1.0.0",
    name: "tapnet",
    type: "tap",
    ...extra,
  });
  const full = {
    multiQueue: true,
    mtu: 1400,
    owner: 1000,
    group: 1000,
    bridge: "br9",
    ipam: { type: "static", addresses: [{ address: "10.82.0.2/24" }] },
  };

  test("a tap with the configured settings, in the bridge, addressed; DEL removes it", async () => {
    const c = conf({ ...full, mac: "0a:00:00:00:00:01", runtimeConfig: { mac: "0a:00:00:00:00:02" } });
    const call = {
      containerId: "tap1",
      netns: ctr.path,
      ifname: "tap0",
      args: "IgnoreUnknown=1;MAC=0a:00:00:00:00:03",
    };
    const r = await cniOk(host, "tap", "ADD", c, call);
    const l = (await link("tap0"))!;
    assert.equal(l.linkinfo?.info_kind, "tun");
    assert.equal(l.linkinfo?.info_data?.["type"], "tap");
    assert.equal(l.linkinfo?.info_data?.["multi_queue"], true);
    assert.equal(l.linkinfo?.info_data?.["persist"], true);
    assert.equal(l.mtu, 1400);
    assert.equal(l.address, "0a:00:00:00:00:02"); // runtimeConfig wins over CNI_ARGS and the config
    assert.equal(l.master, "br9");
    assert.ok(l.flags.includes("UP"));
    assert.deepEqual(
      l.addr_info?.map((a) => a.local),
      ["10.82.0.2"],
    );
    assert.deepEqual(r["interfaces"], [{ name: "tap0", mac: "0a:00:00:00:00:02", sandbox: ctr.path }]);
    await cniOk(host, "tap", "CHECK", { ...c, prevResult: r }, call);
    await cniOk(host, "tap", "DEL", c, call);
    assert.equal(await link("tap0"), undefined);
    await cniOk(host, "tap", "DEL", c, call);
  });

  test("layer 2 only without ipam; CNI_ARGS MAC", async () => {
    const call = { containerId: "tap2", netns: ctr.path, ifname: "tap1", args: "MAC=0a:00:00:00:00:04" };
    const r = await cniOk(host, "tap", "ADD", conf({}), call);
    assert.equal((await link("tap1"))?.address, "0a:00:00:00:00:04");
    assert.equal(r["ips"], undefined);
    await cniOk(host, "tap", "DEL", conf({}), call);
  });

  test(
    "same device as a current upstream build, when one is there",
    { skip: !existsSync(`${CURRENT_UPSTREAM}/tap`) },
    async () => {
      const c = conf({ multiQueue: true, owner: 1000, ipam: full.ipam });
      await cniOk(host, "tap", "ADD", c, {
        containerId: "tap3",
        netns: ctr.path,
        ifname: "tu0",
        bin: CURRENT_UPSTREAM,
      });
      await cniOk(host, "tap", "ADD", c, { containerId: "tap4", netns: ctr.path, ifname: "tu1" });
      const shape = (l: Link): unknown => ({
        mtu: l.mtu,
        flags: l.flags,
        data: l.linkinfo?.info_data,
        addrs: l.addr_info?.length,
      });
      assert.deepEqual(shape((await link("tu1"))!), shape((await link("tu0"))!));
      await cniOk(host, "tap", "DEL", c, { containerId: "tap3", netns: ctr.path, ifname: "tu0" });
      await cniOk(host, "tap", "DEL", c, {
        containerId: "tap4",
        netns: ctr.path,
        ifname: "tu1",
        bin: CURRENT_UPSTREAM,
      });
      assert.equal(await link("tu0"), undefined);
      assert.equal(await link("tu1"), undefined);
    },
  );

  test("bad values are refused, nothing is left", async () => {
    const call = { containerId: "tap5", netns: ctr.path, ifname: "tap9" };
    const cases: Array<[object, number, RegExp]> = [
      [{ mac: "nope" }, 7, /invalid MAC address/],
      [{ owner: -1 }, 7, /owner/],
      [{ mtu: 1.5 }, 7, /mtu/],
      [{ bridge: "no such" }, 7, /bridge/],
      [{ bridge: "nobr0" }, 999, /failed to get bridge nobr0/],
      [{ selinuxContext: "a;b" }, 7, /selinuxContext/],
    ];
    for (const [extra, code, msg] of cases) {
      const r = await cni(host, "tap", "ADD", conf(extra), call);
      assert.equal(r.json?.["code"], code, JSON.stringify(extra) + r.stdout);
      assert.match(String(r.json?.["msg"]), msg);
      assert.equal(await link("tap9"), undefined);
    }
  });
});
