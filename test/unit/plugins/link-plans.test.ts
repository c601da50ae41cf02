/**
 * The link plugins' `ip -batch` plans (macvlan, ipvlan, vlan, dummy), compared with literal
 * text, and what the container side's run asks of the process runner: one shell in the
 * namespace that writes the notify sysctls and execs ip. No root.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { containerLinkPlan, createLinkPlan } from "../../../src/link/link_plans.js";
import { configureContainerLink } from "../../../src/link/attach.js";
import { FakeRunner } from "../../../src/process/fake.js";
import type { Result } from "../../../src/cni/index.js";

const NETNS = "/run/netns/ctr1";
const RESULT: Result = {
  cniVersion: "1.0.0",
  ips: [
    { address: "10.10.0.5/24", gateway: "10.10.0.1", interface: 0 },
    { address: "fd10::5/64", interface: 0 },
  ],
  routes: [{ dst: "0.0.0.0/0" }, { dst: "192.168.0.0/16", gw: "10.10.0.254" }],
};

test("the link is born in the container under its name; with its master there, the plan runs there", () => {
  const macvlan = createLinkPlan(
    { kind: "macvlan", typeArgs: ["mode", "bridge"], master: "eth0", mtu: 1400, mac: "0a:58:0a:0a:00:05" },
    NETNS,
    "net1",
  );
  assert.equal(
    macvlan.text(),
    `link add net1 link eth0 mtu 1400 address 0a:58:0a:0a:00:05 netns ${NETNS} type macvlan mode bridge\n`,
  );
  assert.equal(macvlan.options.netns, undefined);
  const vlan = createLinkPlan(
    { kind: "vlan", typeArgs: ["id", "42"], master: "eth1", masterInContainer: true },
    NETNS,
    "eth0.42",
  );
  assert.equal(vlan.text(), "link add eth0.42 link eth1 type vlan id 42\n");
  assert.equal(vlan.options.netns, NETNS);
  assert.equal(
    createLinkPlan({ kind: "dummy", typeArgs: [] }, NETNS, "d0").text(),
    `link add d0 netns ${NETNS} type dummy\n`,
  );
});

test("the container side: addresses with DAD, up, routes through the family's gateway, the link shown", () => {
  assert.equal(
    containerLinkPlan(NETNS, "net1", RESULT, true).plan.text(),
    `addr add 10.10.0.5/24 dev net1
addr add fd10::5/64 dev net1
link set net1 up
route prepend 0.0.0.0/0 via 10.10.0.1 dev net1
route prepend 192.168.0.0/16 via 10.10.0.254 dev net1
link show net1
`,
  );
  assert.equal(
    containerLinkPlan(NETNS, "net1", { cniVersion: "1.0.0" }, false).plan.text(),
    "link set net1 up\nlink show net1\n",
  );
});

test("one shell in the namespace writes arp_notify and ndisc_notify, then execs ip; the name is an argument", async () => {
  const runner = new FakeRunner().on(
    (c) => c.argv[0] === "sh",
    () => ({ stdout: '[{"ifname":"net1","address":"0a:58:0a:0a:00:05"}]\n' }),
  );
  const link = await configureContainerLink(NETNS, "net1", { cniVersion: "1.0.0" }, { runner });
  assert.equal(link.address, "0a:58:0a:0a:00:05");
  assert.equal(runner.calls.length, 1);
  const [call] = runner.calls;
  assert.equal(call!.netns, NETNS);
  assert.equal(call!.stdin, "link set net1 up\nlink show net1\n");
  assert.deepEqual(call!.argv.slice(0, 2), ["sh", "-c"]);
  assert.deepEqual(call!.argv.slice(3), ["sh", "net1"]);
  assert.ok(call!.argv[2]!.includes('"/proc/sys/net/ipv4/conf/$1/arp_notify"'));
  assert.ok(call!.argv[2]!.endsWith("\nexec ip -json -batch -"));
  assert.ok(!call!.argv[2]!.includes("net1"));

  const quiet = new FakeRunner().on(
    (c) => c.argv[0] === "ip",
    () => ({ stdout: '[{"ifname":"net1"}]\n' }),
  );
  await configureContainerLink(NETNS, "net1", { cniVersion: "1.0.0" }, { runner: quiet, notify: false });
  assert.deepEqual(quiet.commandLines(), ["ip -n ctr1 -json -batch -"]);
});
