/**
 * Bad input is refused before the first change: each case runs a plugin the way a runtime does
 * inside a throwaway host (a bridge, a container with eth0, host-local and tuning stores) and
 * requires a CNI error with the spec's code (4 bad environment, 7 bad config), a message naming
 * what to fix, no stack trace, and the host, the container and the stores exactly as before (the
 * plugin's working directory, where a relative path would land, is one of the stores).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { cni, tempDir } from "../helpers/cni.js";
import { hostAndContainer, hostState } from "../helpers/state.js";

type Conf = Record<string, unknown>;
interface Case {
  name: string;
  plugin: string;
  conf: (dir: string) => Conf;
  /** CNI_NETNS; default the container's. */
  netns?: (c: { container: string; host: string; dir: string }) => string;
  args?: string;
  code: 4 | 7;
  msg: RegExp;
}

const bridge = (dir: string, extra: Conf = {}, ipam: Conf = {}): Conf => ({
  cniVersion: "1.0.0",
  name: "refnet",
  type: "bridge",
  bridge: "refbr0",
  isGateway: true,
  ipMasq: true,
  ipam: { type: "host-local", dataDir: join(dir, "ipam"), ranges: [[{ subnet: "10.230.0.0/24" }]], ...ipam },
  ...extra,
});
const ptp = (dir: string): Conf => ({ ...bridge(dir), type: "ptp" });
const prevResult = (address: string): Conf => ({
  cniVersion: "1.0.0",
  interfaces: [{ name: "eth0", sandbox: "/x" }],
  ips: [{ address, interface: 0 }],
});
const portmap = (address: string): Conf => ({
  cniVersion: "1.0.0",
  name: "refnet",
  type: "portmap",
  backend: "nftables",
  runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] },
  prevResult: prevResult(address),
});
const tuning = (dir: string, extra: Conf): Conf => ({
  cniVersion: "1.0.0",
  name: "refnet",
  type: "tuning",
  dataDir: join(dir, "tuning"),
  ...extra,
  prevResult: prevResult("10.230.0.5/24"),
});
const hostLocal = (dir: string, range: Conf): Conf =>
  bridge(dir, {}, { ranges: [[{ subnet: "10.230.0.0/24", ...range }]] });
const staticIpam = (dir: string, ipam: Conf): Conf => ({
  ...bridge(dir),
  ipam: { type: "static", ...ipam },
});

const cases: Case[] = [
  // CNI_NETNS that is not a network namespace, or is the host's own (bridge, ptp).
  {
    name: "bridge, CNI_NETNS a regular file",
    plugin: "bridge",
    conf: bridge,
    netns: (c) => join(c.dir, "file"),
    code: 4,
    msg: /CNI_NETNS .* is a regular file/,
  },
  {
    name: "bridge, CNI_NETNS a directory",
    plugin: "bridge",
    conf: bridge,
    netns: (c) => c.dir,
    code: 4,
    msg: /CNI_NETNS .* is a directory/,
  },
  {
    name: "bridge, CNI_NETNS missing",
    plugin: "bridge",
    conf: bridge,
    netns: (c) => join(c.dir, "gone"),
    code: 4,
    msg: /CNI_NETNS .* is missing/,
  },
  {
    name: "tuning, CNI_NETNS a regular file",
    plugin: "tuning",
    conf: (d) => tuning(d, { mtu: 1400 }),
    netns: (c) => join(c.dir, "file"),
    code: 4,
    msg: /is a regular file/,
  },
  {
    name: "bridge, the host's own namespace",
    plugin: "bridge",
    conf: bridge,
    netns: (c) => c.host,
    code: 4,
    msg: /the host's own network namespace/,
  },
  {
    name: "ptp, the host's own namespace",
    plugin: "ptp",
    conf: ptp,
    netns: (c) => c.host,
    code: 4,
    msg: /the host's own network namespace/,
  },
  // MACs an interface cannot have, from each source.
  {
    name: "bridge config mac broadcast",
    plugin: "bridge",
    conf: (d) => bridge(d, { mac: "ff:ff:ff:ff:ff:ff" }),
    code: 7,
    msg: /is the broadcast address: give a unicast/,
  },
  {
    name: "bridge runtimeConfig.mac multicast",
    plugin: "bridge",
    conf: (d) => bridge(d, { runtimeConfig: { mac: "01:00:5e:00:00:01" } }),
    code: 7,
    msg: /is a multicast address/,
  },
  {
    name: "bridge CNI_ARGS MAC all-zero",
    plugin: "bridge",
    conf: bridge,
    args: "MAC=00:00:00:00:00:00",
    code: 7,
    msg: /is the all-zero address/,
  },
  {
    name: "tuning mac multicast",
    plugin: "tuning",
    conf: (d) => tuning(d, { mac: "33:33:00:00:00:01" }),
    code: 7,
    msg: /is a multicast address/,
  },
  // tuning values the kernel cannot hold.
  {
    name: "tuning mtu 2^64",
    plugin: "tuning",
    conf: (d) => tuning(d, { mtu: 2 ** 64 }),
    code: 7,
    msg: /mtu: must be an integer from 0 to 4294967295/,
  },
  {
    name: "tuning txQLen 1e30",
    plugin: "tuning",
    conf: (d) => tuning(d, { txQLen: 1e30 }),
    code: 7,
    msg: /txQLen: must be an integer/,
  },
  {
    name: "tuning mtu above the device's maximum",
    plugin: "tuning",
    conf: (d) => tuning(d, { mtu: 70000 }),
    code: 7,
    msg: /mtu 70000 is outside what eth0 accepts/,
  },
  // State directories relative to the runtime's working directory (upstream accepts them).
  {
    name: "bridge, host-local dataDir relative",
    plugin: "bridge",
    conf: (d) => bridge(d, {}, { dataDir: "ipam-relative" }),
    code: 7,
    msg: /ipam\.dataDir: must be an absolute path/,
  },
  {
    name: "host-local dataDir relative",
    plugin: "host-local",
    conf: (d) => bridge(d, {}, { dataDir: "::" }),
    code: 7,
    msg: /ipam\.dataDir: must be an absolute path/,
  },
  {
    name: "tuning dataDir relative",
    plugin: "tuning",
    conf: (d) => tuning(d, { dataDir: "tuning-relative", mtu: 1400 }),
    code: 7,
    msg: /dataDir: must be an absolute path/,
  },
  // Shapes: objects given as arrays, empty ipam.type.
  {
    name: "bridge ipam an array",
    plugin: "bridge",
    conf: (d) => ({ ...bridge(d), ipam: [] }),
    code: 7,
    msg: /ipam: expected an object, got an array/,
  },
  {
    name: "bridge runtimeConfig an array",
    plugin: "bridge",
    conf: (d) => ({ ...bridge(d), runtimeConfig: [] }),
    code: 7,
    msg: /runtimeConfig: expected an object/,
  },
  {
    name: "portmap runtimeConfig an array",
    plugin: "portmap",
    conf: () => ({ ...portmap("10.230.0.5/24"), runtimeConfig: [] }),
    code: 7,
    msg: /runtimeConfig: expected an object/,
  },
  {
    name: "host-local ipam an array",
    plugin: "host-local",
    conf: (d) => ({ ...bridge(d), ipam: [] }),
    code: 7,
    msg: /ipam: expected an object/,
  },
  {
    name: "static ipam an array",
    plugin: "static",
    conf: (d) => ({ ...bridge(d), ipam: [] }),
    code: 7,
    msg: /ipam: expected an object/,
  },
  {
    name: "static ipam.dns an array",
    plugin: "bridge",
    conf: (d) => staticIpam(d, { addresses: [{ address: "10.230.0.9/24" }], dns: [] }),
    code: 7,
    msg: /ipam.dns: expected an object/,
  },
  {
    name: "bridge empty ipam.type",
    plugin: "bridge",
    conf: (d) => ({ ...bridge(d), ipam: { type: "" } }),
    code: 7,
    msg: /ipam.type: must name the IPAM plugin/,
  },
  // host-local ranges that hand out the wrong addresses.
  {
    name: "host-local rangeStart after rangeEnd",
    plugin: "bridge",
    conf: (d) => hostLocal(d, { rangeStart: "10.230.0.50", rangeEnd: "10.230.0.40" }),
    code: 7,
    msg: /rangeStart 10.230.0.50 is after rangeEnd 10.230.0.40/,
  },
  {
    name: "host-local rangeStart the network address",
    plugin: "bridge",
    conf: (d) => hostLocal(d, { rangeStart: "10.230.0.0" }),
    code: 7,
    msg: /rangeStart 10.230.0.0 is the network address/,
  },
  {
    name: "host-local rangeEnd the broadcast address",
    plugin: "host-local",
    conf: (d) => hostLocal(d, { rangeEnd: "10.230.0.255" }),
    code: 7,
    msg: /rangeEnd 10.230.0.255 is the broadcast address/,
  },
  {
    name: "host-local gateway outside the subnet",
    plugin: "bridge",
    conf: (d) => hostLocal(d, { gateway: "10.231.0.1" }),
    code: 7,
    msg: /gateway 10.231.0.1 not in network 10.230.0.0\/24/,
  },
  {
    name: "static gateway of the other family",
    plugin: "bridge",
    conf: (d) => staticIpam(d, { addresses: [{ address: "10.230.0.9/24", gateway: "fd00::1" }] }),
    code: 7,
    msg: /gateway fd00::1 of address 10.230.0.9\/24 is of the other IP family/,
  },
  // prevResult addresses that are not addresses.
  ...["bad", "10.230.0.5/33", "10.230.0.5/24; flush ruleset"].map((a): Case => ({
    name: `portmap prevResult address ${JSON.stringify(a)}`,
    plugin: "portmap",
    conf: () => portmap(a),
    code: 7,
    msg: /prevResult.ips\[0\].address: .* is not an address with a prefix length/,
  })),
  // The firewall's admin chain may not be a built-in chain, a target or its own chain.
  ...["iptables", "nftables", "firewalld"].flatMap((backend) =>
    ["INPUT", "FORWARD", "ACCEPT", "DROP", "CNI-FORWARD"].map((chain): Case => ({
      name: `firewall ${backend} iptablesAdminChainName ${chain}`,
      plugin: "firewall",
      conf: () => ({
        cniVersion: "1.0.0",
        name: "refnet",
        type: "firewall",
        backend,
        iptablesAdminChainName: chain,
        prevResult: prevResult("10.230.0.5/24"),
      }),
      code: 7,
      msg: /iptablesAdminChainName: must name a chain of your own/,
    })),
  ),
];

before(sweepStaleNamespaces);

describe("refused before the first change", () => {
  const nets = new NetnsPool();
  const dir = tempDir("refused");
  let host: Netns, container: Netns;
  before(async () => {
    [host, container] = await hostAndContainer(nets, "ref", "refpeer");
    writeFileSync(join(dir.path, "file"), "");
    mkdirSync(join(dir.path, "ipam"));
  });
  after(async () => {
    await nets.destroyAll();
    dir.remove();
  });

  for (const c of cases) {
    test(c.name, async () => {
      const before = await hostState([host, container], [dir.path]);
      const netns =
        c.netns?.({ container: container.path, host: host.path, dir: dir.path }) ?? container.path;
      const r = await cni(host, c.plugin, "ADD", c.conf(dir.path), {
        containerId: "refused1",
        netns,
        args: c.args,
        // The runtime's working directory is the temp dir, compared below with the stores.
        cwd: dir.path,
      });
      assert.notEqual(r.code, 0, `refused: ${r.stdout}`);
      assert.equal(r.json?.["code"], c.code, r.stdout + r.stderr);
      assert.match(String(r.json?.["msg"]), c.msg);
      assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /, "no stack trace");
      assert.equal(await hostState([host, container], [dir.path]), before, "nothing changed");
    });
  }

  test("control: the same host state after a valid ADD differs, and after its DEL it is back", async () => {
    const before = await hostState([host, container], [join(dir.path, "ipam")]);
    const call = { containerId: "control", netns: container.path, ifname: "eth1" };
    const r = await cni(host, "bridge", "ADD", bridge(dir.path), call);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.notEqual(await hostState([host, container], [join(dir.path, "ipam")]), before);
    assert.equal((await cni(host, "bridge", "DEL", bridge(dir.path), call)).code, 0);
  });

  test("DEL with the host's own namespace (ADD refused it) removes nothing inside it", async () => {
    await host.sh(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "refpeer2"]);
    try {
      for (const plugin of ["bridge", "ptp"]) {
        const conf = plugin === "bridge" ? bridge(dir.path) : ptp(dir.path);
        const r = await cni(host, plugin, "DEL", conf, { containerId: "refused1", netns: host.path });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.match(await host.sh(["ip", "link", "show"]), /\beth0\b/, `${plugin} DEL kept the host's eth0`);
      }
    } finally {
      await host.run(["ip", "link", "del", "eth0"]);
    }
  });
});
