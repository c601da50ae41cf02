/**
 * `holds(attachment, spec)` of the host-state contract on every backend, without root: false on
 * an empty host, true once set up (and while any part of it is left), false for another
 * attachment, false again after remove. What `cni-nft migrate` asks before it removes a source.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeHost } from "../../src/hoststate/fake.js";
import type { HostStateBackend } from "../../src/hoststate/index.js";
import { masqueradeBackends } from "../../src/ipmasq/index.js";
import { spoofCheck } from "../../src/link/veth_state.js";
import { portmapBackends } from "../../plugins/meta/portmap/backends.js";
import { firewallBackends, isolationBackends } from "../../plugins/meta/firewall/backends.js";
import { FirewalldFirewall } from "../../plugins/meta/firewall/firewall_firewalld.js";
import type { FirewallSpec } from "../../plugins/meta/firewall/firewall_backend.js";
import type { PortMapSpec } from "../../plugins/meta/portmap/config.js";
import { FakeRunner } from "../../src/process/fake.js";

const A = { network: "net1", containerId: "ctr1", ifname: "eth0" };
const B = { network: "net1", containerId: "ctr2", ifname: "eth0" };

const fw = (addresses: string[], bridge: string): FirewallSpec => ({
  addresses,
  adminChain: "CNI-ADMIN",
  zone: "trusted",
  ingressPolicy: "isolated",
  mark: 0x1000,
  bridge,
});
const pm = (address: string): PortMapSpec => ({
  snat: true,
  masqAll: false,
  markMasqBit: 13,
  conditionsV4: [],
  conditionsV6: [],
  mappings: [{ hostPort: address.endsWith("5") ? 8080 : 8081, containerPort: 80, protocol: "tcp" }],
  containers: [{ family: 4, address, subnet: "10.88.0.0/24" }],
});
const iso = (bridge: string) => ({ bridge, isolated: true, families: [4 as const], mark: 0x1000 });

interface Case {
  label: string;
  make: (h: FakeHost) => HostStateBackend<unknown>[];
  a: unknown;
  b: unknown;
}
const cases: Case[] = [
  {
    label: "masquerade",
    make: (h) => masqueradeBackends(h),
    a: { addresses: ["10.88.0.5/24", "fd00::5/64"] },
    b: { addresses: ["10.88.0.6/24"] },
  },
  {
    label: "spoofcheck",
    make: (h) =>
      [spoofCheck(h, () => Promise.resolve(new Set(["veth1", "veth2"])))] as HostStateBackend<unknown>[],
    a: { hostVeth: "veth1", mac: "0a:58:0a:58:00:05" },
    b: { hostVeth: "veth2", mac: "0a:58:0a:58:00:06" },
  },
  {
    label: "portmap",
    make: (h) => portmapBackends(h),
    a: pm("10.88.0.5"),
    b: pm("10.88.0.6"),
  },
  {
    label: "firewall",
    make: (h) => firewallBackends(h).filter((b) => b.name !== "firewalld"),
    a: fw(["10.88.0.5/32", "fd00::5/128"], "cni0"),
    b: fw(["10.88.0.6/32"], "cni1"),
  },
  {
    label: "isolation",
    make: (h) => isolationBackends(h),
    a: iso("cni0"),
    b: iso("cni1"),
  },
];

for (const c of cases)
  for (const name of ["iptables", "nftables"] as const) {
    const backendOf = (h: FakeHost): HostStateBackend<unknown> | undefined =>
      c.make(h).find((b) => b.name === name);
    if (!backendOf(new FakeHost())) continue;
    test(`${c.label} (${name}): holds what it set up, not another attachment's; not after remove`, async () => {
      const host = new FakeHost();
      const be = backendOf(host)!;
      assert.equal(await be.holds(A, c.a), false, "empty host");
      await be.setUp(A, c.a);
      assert.equal(await be.holds(A, c.a), true);
      assert.equal(await be.holds(B, c.b), false, "another attachment");
      await be.setUp(B, c.b);
      await be.remove(A, c.a);
      assert.equal(await be.holds(A, c.a), false, "after remove");
      assert.equal(await be.holds(B, c.b), true, "the other one stays");
    });
  }

test("holds a partial state: masquerade (iptables) with only its chain left; spoofcheck with one of its elements", async () => {
  const host = new FakeHost();
  const [ipt] = masqueradeBackends(host);
  await ipt!.setUp(A, { addresses: ["10.88.0.5/24"] });
  const jumps = host.iptables
    .saveText(4, "nat")
    .split("\n")
    .filter((l) => l.startsWith("-A POSTROUTING"));
  await host.iptables.restore(
    4,
    "nat",
    jumps.map((l) => "-D" + l.slice(2)),
  );
  assert.equal(await ipt!.holds(A, { addresses: ["10.88.0.5/24"] }), true);

  const sc = spoofCheck(host, () => Promise.resolve(new Set(["veth1"])));
  const spec = { hostVeth: "veth1", mac: "0a:58:0a:58:00:05" };
  await sc.setUp(A, spec);
  const nft = host.nft("bridge", "cni_nft_spoofcheck");
  await nft.run(
    nft.newTransaction().delete({ kind: "element", set: "allowed", key: ['"veth1"', "0a:58:0a:58:00:05"] }),
  );
  assert.deepEqual(await sc.check(A, spec), [
    'spoof-check element "veth1" . 0a:58:0a:58:00:05 in set allowed of table bridge cni_nft_spoofcheck',
  ]);
  assert.equal(await sc.holds(A), true);
});

test("firewalld: holds when one of the addresses is a source of the zone (scripted D-Bus)", async () => {
  const runner = new FakeRunner();
  runner.on((c) => c.argv.includes("org.freedesktop.DBus.GetNameOwner"), {
    stdout: 'method return\n   string ":1.2"\n',
  });
  runner.on((c) => c.argv.some((x) => x.endsWith(".querySource")) && c.argv.includes("string:10.88.0.5/32"), {
    stdout: "method return\n   boolean true\n",
  });
  runner.on((c) => c.argv.some((x) => x.endsWith(".querySource")), {
    stdout: "method return\n   boolean false\n",
  });
  const fwd = new FirewalldFirewall(runner, (t) => t === "dbus-send");
  assert.equal(await fwd.holds(A, fw(["10.88.0.5/32", "fd00::5/128"], "cni0")), true);
  assert.equal(await fwd.holds(B, fw(["10.88.0.6/32"], "cni0")), false);
  const stopped = new FirewalldFirewall(new FakeRunner({ code: 1, stderr: "no owner" }), () => true);
  assert.equal(await stopped.holds(A, fw(["10.88.0.5/32"], "cni0")), false);
});
