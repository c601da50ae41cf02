/**
 * A result before cniVersion 0.3.0 is `ip4`/`ip6` and must carry an address: every plugin whose
 * ADD would answer such a config without one refuses it with code 7 before the first change
 * (upstream's bridge, macvlan, tap and host-device make their links first and leave them when the
 * result cannot be written). Each case runs a plugin the way a runtime does inside a throwaway
 * host (a master veth, a device to move, a container with eth0) under 0.1.0, 0.2.0 and no
 * cniVersion at all (which means 0.1.0), and requires the refusal, a message naming what to fix,
 * and links, addresses, routes, nft and iptables rules of host and container and the host-local
 * store exactly as before; the DEL a runtime sends after a failed ADD succeeds and changes nothing
 * either. Controls: the same configs under 0.3.0 succeed (so the refusal is what kept the host
 * unchanged), and their DEL restores the state.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { cni, tempDir } from "../helpers/cni.js";
import { hostAndContainer, hostState, stateDiff } from "../helpers/state.js";

type Conf = Record<string, unknown>;

/** Config of each plugin without anything that would give its result an address. */
const addressless: Record<string, Conf> = {
  bridge: { bridge: "rvbr0", isGateway: true, ipMasq: true, macspoofchk: true },
  macvlan: { master: "rvm0", mode: "bridge" },
  tap: { mtu: 1400 },
  "host-device": { device: "rvdev0" },
  // These need an address at every version: refused for that (code 7) before anything, too.
  ipvlan: { master: "rvm0" },
  vlan: { master: "rvm0", vlanId: 10 },
  dummy: {},
  ptp: { ipMasq: true },
};
const MESSAGE: Record<string, RegExp> = {
  ipvlan: /missing ipam.type/,
  vlan: /missing ipam.type/,
  dummy: /requires an IPAM configuration/,
  ptp: /needs an ipam section/,
};
const mustCarry = (v: string): RegExp =>
  new RegExp(
    `^cniVersion ${v.replaceAll(".", "\\.")} results must carry an IP address and this config has no ipam\\.type: add an ipam section with a type \\(e\\.g\\. host-local\\) or use cniVersion 0\\.3\\.0 or later$`,
  );

/**
 * The versions and shapes refused: no ipam at all, or an ipam section without a type (host-local's
 * fields, whose store must stay untouched). `version` undefined: no cniVersion (libcni reads 0.1.0).
 */
const VARIANTS = [
  { version: "0.1.0", ipam: false },
  { version: "0.2.0", ipam: true },
  { version: undefined, ipam: false },
] as const;

const conf = (plugin: string, version: string | undefined, store?: string): Conf => ({
  ...(version ? { cniVersion: version } : {}),
  name: "rvnet",
  type: plugin,
  ...addressless[plugin],
  ...(store ? { ipam: { dataDir: store, ranges: [[{ subnet: "10.231.0.0/24" }]] } } : {}),
});

before(sweepStaleNamespaces);

describe("results before 0.3.0 without an address: refused before the first change", () => {
  const nets = new NetnsPool();
  const dir = tempDir("refver");
  let host: Netns, container: Netns;
  const tun = existsSync("/dev/net/tun");
  before(async () => {
    [host, container] = await hostAndContainer(nets, "rv", "rvpeer");
    // rvm0: the master of macvlan, ipvlan and vlan; rvdev0: host-device's device (down, as a
    // device that comes back from a namespace is).
    await host.sh(["ip", "link", "add", "rvm0", "type", "veth", "peer", "name", "rvm1"]);
    await host.sh(["ip", "link", "set", "rvm0", "up"]);
    await host.sh(["ip", "link", "add", "rvdev0", "type", "veth", "peer", "name", "rvdev1"]);
  });
  after(async () => {
    await nets.destroyAll();
    dir.remove();
  });

  const state = (): Promise<string> => hostState([host, container], [dir.path]);
  const call = (id: string, ifname = "net1") => ({
    containerId: id,
    netns: container.path,
    ifname,
    cwd: dir.path,
  });

  for (const plugin of Object.keys(addressless))
    for (const { version, ipam } of VARIANTS) {
      const label = `${version ?? "no cniVersion"}, ${ipam ? "ipam without a type" : "no ipam"}`;
      test(`${plugin}, ${label}: code 7, nothing changed; its DEL succeeds`, async () => {
        const before = await state();
        const c = conf(plugin, version, ipam ? join(dir.path, "store") : undefined);
        const r = await cni(host, plugin, "ADD", c, call(`rv-${plugin}`));
        assert.equal(r.code, 1, `refused: ${r.stdout}`);
        assert.equal(r.json?.["code"], 7, r.stdout + r.stderr);
        assert.match(String(r.json?.["msg"]), MESSAGE[plugin] ?? mustCarry(version ?? "0.1.0"));
        assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /, "no stack trace");
        const refused = await state();
        assert.equal(refused, before, `ADD changed: ${stateDiff(before, refused)}`);
        const del = await cni(host, plugin, "DEL", c, call(`rv-${plugin}`));
        assert.equal(del.code, 0, del.stdout + del.stderr);
        const after = await state();
        assert.equal(after, before, `DEL changed: ${stateDiff(before, after)}`);
      });
    }

  test("vrf (versions from 0.3.1, as upstream): 0.2.0 is code 1, nothing changed", async () => {
    const before = await state();
    const c = {
      ...conf("vrf", "0.2.0"),
      vrfname: "rvvrf",
      prevResult: { cniVersion: "0.2.0", ip4: { ip: "10.231.0.5/24" } },
    };
    const r = await cni(host, "vrf", "ADD", c, call("rv-vrf", "eth0"));
    assert.equal(r.json?.["code"], 1, r.stdout + r.stderr);
    assert.match(String(r.json?.["msg"]), /incompatible CNI versions/);
    assert.equal(await state(), before, "nothing changed");
  });

  test("a chained plugin (tuning) whose prevResult has no address under 0.2.0: code 7, nothing changed", async () => {
    const before = await state();
    const c = {
      cniVersion: "0.2.0",
      name: "rvnet",
      type: "tuning",
      mtu: 1400,
      dataDir: join(dir.path, "tuning"),
      prevResult: { cniVersion: "0.2.0", dns: {} },
    };
    const r = await cni(host, "tuning", "ADD", c, call("rv-tuning", "eth0"));
    assert.equal(r.json?.["code"], 7, r.stdout + r.stderr);
    assert.match(
      String(r.json?.["msg"]),
      /^cniVersion 0\.2\.0 results must carry an IP address and the prevResult has none: chain this plugin after one that assigns an address or use cniVersion 0\.3\.0 or later$/,
    );
    assert.equal(await state(), before, "nothing changed");
  });

  test("a main plugin with ipam chained after another under 0.2.0, its prevResult without an address: taken, as upstream's", async () => {
    const c = {
      ...conf("bridge", "0.2.0"),
      ipMasq: false,
      macspoofchk: false,
      ipam: {
        type: "host-local",
        dataDir: join(dir.path, "chained"),
        ranges: [[{ subnet: "10.231.1.0/24" }]],
      },
      prevResult: { cniVersion: "0.2.0", dns: {} },
    };
    const r = await cni(host, "bridge", "ADD", c, call("rv-chained"));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const ip = (r.json?.["ip4"] as { ip?: string } | undefined)?.ip;
    assert.match(String(ip), /^10\.231\.1\./, "its own IPAM's address");
    const del = await cni(host, "bridge", "DEL", c, call("rv-chained"));
    assert.equal(del.code, 0, del.stdout + del.stderr);
    await host.sh(["ip", "link", "del", "rvbr0"]);
    assert.equal(existsSync(join(dir.path, "chained", "rvnet", ip!.split("/")[0]!)), false, "released");
  });

  for (const plugin of ["bridge", "macvlan", "tap", "host-device"])
    test(
      `control: ${plugin}'s config under 0.3.0 changes the host; its DEL restores it`,
      {
        skip: plugin === "tap" && !tun ? "no /dev/net/tun" : false,
      },
      async () => {
        const before = await state();
        const c = conf(plugin, "0.3.0");
        const r = await cni(host, plugin, "ADD", c, call(`rvc-${plugin}`));
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(r.json?.["cniVersion"], "0.3.0");
        assert.equal(r.json?.["ips"], undefined, "layer 2 only: no address");
        assert.notEqual(await state(), before, "ADD changed something");
        const del = await cni(host, plugin, "DEL", c, call(`rvc-${plugin}`));
        assert.equal(del.code, 0, del.stdout + del.stderr);
        // The bridge and the spoof check's table stay (upstream keeps its bridge and base chain
        // too); everything of the attachment goes.
        if (plugin === "bridge") {
          await host.sh(["ip", "link", "del", "rvbr0"]);
          await host.sh(["nft", "delete", "table", "bridge", "cni_nft_spoofcheck"]);
        }
        const after = await state();
        assert.equal(after, before, `after DEL: ${stateDiff(before, after)}`);
      },
    );
});
