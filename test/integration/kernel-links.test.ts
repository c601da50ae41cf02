/**
 * vlan, ipvlan, dummy and vrf: config validation (code 7 naming the field, nothing changed), and
 * ADD on the real kernel. Where the kernel has the link type the link is made, checked and
 * deleted; where it has not (this machine's: no 8021q, ipvlan, dummy or VRF), ADD fails with code
 * 50 naming the missing kernel feature, before IPAM runs, and leaves nothing.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { cni, cniOk, storeFiles, tempDir } from "../helpers/cni.js";

before(sweepStaleNamespaces);

describe("vlan, ipvlan, dummy, vrf", () => {
  const nets = new NetnsPool();
  const dir = tempDir("klinks");
  let host: Netns;
  let n = 0;
  const supported: Record<string, boolean> = {};
  before(async () => {
    host = await nets.create("klh");
    await host.sh(["ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1"]);
    await host.sh(["ip", "link", "set", "up0", "up"]);
    // Probe each link type in a scratch namespace.
    const probe = await nets.create("klp");
    await probe.sh(["ip", "link", "add", "m0", "type", "veth", "peer", "name", "m1"]);
    for (const [kind, args] of [
      ["vlan", ["link", "m0", "type", "vlan", "id", "5"]],
      ["ipvlan", ["link", "m0", "type", "ipvlan", "mode", "l2"]],
      ["dummy", ["type", "dummy"]],
      ["vrf", ["type", "vrf", "table", "10"]],
    ] as Array<[string, string[]]>)
      supported[kind] = (await probe.run(["ip", "link", "add", `p${kind}`, ...args])).code === 0;
  });
  after(async () => {
    await nets.destroyAll();
    dir.remove();
  });

  const ipam = (): object => ({
    type: "host-local",
    dataDir: `${dir.path}/ipam`,
    ranges: [[{ subnet: "10.83.0.0/24" }]],
  });
  const conf = (type: string, extra: object): Record<string, unknown> => ({
    cniVersion: "1.0.0",
    name: `kl${type}`,
    type,
    ...extra,
  });
  async function ctr(): Promise<Netns> {
    return nets.create(`klc${++n}`);
  }
  async function linkIn(
    ns: Netns,
    name: string,
  ): Promise<{ linkinfo?: { info_kind?: string }; master?: string } | undefined> {
    const r = await ns.run(["ip", "-d", "-j", "link", "show", "dev", name]);
    return r.code === 0 ? (JSON.parse(r.stdout) as never[])[0] : undefined;
  }

  const links: Array<[string, object, string]> = [
    ["vlan", { master: "up0", vlanId: 5 }, "802.1Q VLAN"],
    ["ipvlan", { master: "up0", mode: "l2" }, "ipvlan"],
    ["dummy", {}, "dummy links"],
  ];
  for (const [type, extra, feature] of links) {
    test(`${type}: ADD makes the link where the kernel can, else fails naming ${feature} and changes nothing`, async () => {
      const c = await ctr();
      const cfg = conf(type, { ...extra, ipam: ipam() });
      const call = { containerId: `kl${n}`, netns: c.path };
      const r = await cni(host, type, "ADD", cfg, call);
      if (supported[type]) {
        assert.equal(r.code, 0, r.stdout);
        assert.equal((await linkIn(c, "eth0"))?.linkinfo?.info_kind, type);
        await cniOk(host, type, "CHECK", { ...cfg, prevResult: r.json }, call);
        await cniOk(host, type, "DEL", cfg, call);
        assert.equal(await linkIn(c, "eth0"), undefined);
      } else {
        assert.equal(r.json?.["code"], 50, r.stdout);
        assert.match(String(r.json?.["msg"]), new RegExp(`cannot create ${type} links: it lacks ${feature}`));
        assert.equal(await linkIn(c, "eth0"), undefined);
        assert.deepEqual(
          Object.keys(storeFiles(`${dir.path}/ipam/kl${type}`)).filter((f) => f.startsWith("10.")),
          [],
        );
        await cniOk(host, type, "DEL", cfg, call);
      }
    });
  }

  test("vrf: ADD enslaves the interface where the kernel can, else fails naming VRF and changes nothing", async () => {
    const c = await ctr();
    await c.sh(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "e1"]);
    await c.sh(["ip", "addr", "add", "10.84.0.2/24", "dev", "eth0"]);
    await c.sh(["ip", "link", "set", "eth0", "up"]);
    const prev = {
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", sandbox: c.path }],
      ips: [{ address: "10.84.0.2/24", interface: 0 }],
    };
    const cfg = conf("vrf", { vrfname: "blue", prevResult: prev });
    const call = { containerId: "klvrf", netns: c.path };
    const r = await cni(host, "vrf", "ADD", cfg, call);
    if (supported["vrf"]) {
      assert.equal(r.code, 0, r.stdout);
      assert.equal((await linkIn(c, "eth0"))?.master, "blue");
      await cniOk(host, "vrf", "CHECK", cfg, call);
      await cniOk(host, "vrf", "DEL", cfg, call);
      assert.equal(await linkIn(c, "blue"), undefined);
    } else {
      assert.equal(r.json?.["code"], 50, r.stdout);
      assert.match(String(r.json?.["msg"]), /cannot create vrf links: it lacks VRF/);
      assert.equal((await linkIn(c, "eth0"))?.master, undefined);
      assert.equal(await linkIn(c, "blue"), undefined);
      await cniOk(host, "vrf", "DEL", cfg, call);
    }
  });

  test("bad configs are code 7 naming the field, and create nothing", async () => {
    const c = await ctr();
    const cases: Array<[string, object, RegExp]> = [
      ["vlan", { vlanId: 5, ipam: ipam() }, /"master" field is required/],
      ["vlan", { master: "up0", vlanId: 4095, ipam: ipam() }, /invalid VLAN ID 4095/],
      [
        "vlan",
        { master: "up0", vlanId: 5, mtu: 9000, ipam: ipam() },
        /invalid MTU 9000, must be \[0, master MTU\(1500\)\]/,
      ],
      ["vlan", { master: "up0", vlanId: "5" }, /vlanId/],
      ["ipvlan", { master: "up0", mode: "l4", ipam: ipam() }, /mode/],
      ["ipvlan", { master: "up0", mode: "l2" }, /missing ipam.type/],
      [
        "ipvlan",
        { mode: "l2", prevResult: { cniVersion: "1.0.0", interfaces: [{ name: "a" }, { name: "b" }] } },
        /chained master failure/,
      ],
      ["dummy", {}, /dummy interface requires an IPAM configuration/],
      ["vrf", { prevResult: { cniVersion: "1.0.0" } }, /configuration is expected to have a valid vrf name/],
      ["vrf", { vrfname: "blue" }, /missing prevResult from earlier plugin/],
      ["vrf", { vrfname: "blue", table: -1, prevResult: { cniVersion: "1.0.0" } }, /table/],
    ];
    for (const [type, extra, msg] of cases) {
      const r = await cni(host, type, "ADD", conf(type, extra), { containerId: "klbad", netns: c.path });
      assert.equal(r.json?.["code"], 7, `${type} ${JSON.stringify(extra)} ${r.stdout}`);
      assert.match(String(r.json?.["msg"]), msg);
    }
    assert.deepEqual((await c.sh(["ip", "-o", "link"])).trim().split("\n").length, 1); // lo only
  });
});
