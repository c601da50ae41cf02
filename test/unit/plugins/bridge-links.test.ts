/**
 * bridge ADD's `ip -batch` plans, compared with literal text, without root: the host plan and the
 * container plan for the main options. The kernel suites (test/integration/bridge*.test.ts) run
 * the same plans for real.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { schema } from "../../../plugins/main/bridge/config.js";
import { bridgeResult, hostPlan, vlanCommands } from "../../../plugins/main/bridge/links.js";
import { containerPlan, containerUpPlan } from "../../../src/iproute2/veth.js";
import { argsFor, DUAL_STACK_IPAM, NETNS } from "./veth-args.js";

const VETH = "veth0a1b2c3d";

/** Both plans of an ADD with `conf`, as text. */
function plans(conf: Record<string, unknown>, mac?: string): { host: string; container: string } {
  const args = argsFor(schema, "bridge", { ipam: { type: "host-local" }, ...conf });
  const result = bridgeResult(args, structuredClone(DUAL_STACK_IPAM));
  const host = hostPlan(args.config, {
    hostVeth: VETH,
    ifname: "eth0",
    netns: NETNS,
    ips: result.ips!,
    ...(mac ? { mac } : {}),
  });
  const container = containerPlan(NETNS, "eth0", result, { nodad: !args.config.enabledad });
  return { host: host.plan.text(), container: container.plan.text() };
}

test("defaults: a bridge without addresses, the veth born in the container, IPAM's routes", () => {
  assert.deepEqual(plans({}), {
    host: `link add name cni0 type bridge
link set cni0 up
link add ${VETH} type veth peer name eth0 netns ${NETNS}
link set ${VETH} master cni0 up
link set ${VETH} type bridge_slave hairpin off
addr show dev cni0
link show ${VETH}
`,
    container: `addr add 10.22.0.5/24 dev eth0
addr add fd22::5/64 dev eth0 nodad
link set eth0 up
route prepend 0.0.0.0/0 dev eth0
route prepend ::/0 dev eth0
link show eth0
`,
  });
});

test("isGateway, dual stack, mtu, mac: gateway addresses on the bridge, routes via them", () => {
  assert.deepEqual(plans({ bridge: "br9", isGateway: true, mtu: 1400 }, "0a:58:0a:16:00:05"), {
    host: `link add name br9 mtu 1400 type bridge
link set br9 up
addr add 10.22.0.1/24 dev br9
addr add fd22::1/64 dev br9
link add ${VETH} mtu 1400 type veth peer name eth0 mtu 1400 address 0a:58:0a:16:00:05 netns ${NETNS}
link set ${VETH} master br9 up
link set ${VETH} type bridge_slave hairpin off
addr show dev br9
link show ${VETH}
`,
    container: `addr add 10.22.0.5/24 dev eth0
addr add fd22::5/64 dev eth0 nodad
link set eth0 up
route prepend 0.0.0.0/0 via 10.22.0.1 dev eth0
route prepend ::/0 via fd22::1 dev eth0
link show eth0
`,
  });
});

test("isDefaultGateway adds a default route per family unless IPAM has one with a gateway", () => {
  const args = argsFor(schema, "bridge", { ipam: { type: "host-local" }, isDefaultGateway: true });
  const ipam = { ...structuredClone(DUAL_STACK_IPAM), routes: [{ dst: "::/0", gw: "fd22::fe" }] };
  const result = bridgeResult(args, ipam);
  assert.deepEqual(result.routes, [
    { dst: "::/0", gw: "fd22::fe" },
    { dst: "0.0.0.0/0", gw: "10.22.0.1" },
  ]);
  assert.equal(
    containerPlan(NETNS, "net1", result, { nodad: false }).plan.text(),
    `addr add 10.22.0.5/24 dev net1
addr add fd22::5/64 dev net1
link set net1 up
route prepend ::/0 via fd22::fe dev net1
route prepend 0.0.0.0/0 via 10.22.0.1 dev net1
link show net1
`,
  );
  // isDefaultGateway makes the bridge the gateway, as isGateway does.
  assert.match(plans({ isDefaultGateway: true }).host, /^addr add 10\.22\.0\.1\/24 dev cni0$/m);
});

test("hairpinMode, portIsolation, promiscMode are port and bridge flags; ipMasq changes no link", () => {
  const lines = (conf: Record<string, unknown>): string[] =>
    plans(conf)
      .host.split("\n")
      .filter((l) => /promisc|bridge_slave/.test(l));
  assert.deepEqual(lines({ hairpinMode: true, portIsolation: true }), [
    `link set ${VETH} type bridge_slave hairpin on isolated on`,
  ]);
  assert.deepEqual(lines({ promiscMode: true }), [
    "link set cni0 up promisc on",
    `link set ${VETH} type bridge_slave hairpin off`,
  ]);
  assert.deepEqual(plans({ ipMasq: true, ipMasqBackend: "nftables" }), plans({}));
});

test("vlan and vlanTrunk: a VLAN-filtering bridge and the port's VLANs in one bridge -batch", () => {
  const conf = {
    vlan: 100,
    vlanTrunk: [{ id: 200 }, { minID: 300, maxID: 310 }],
    preserveDefaultVlan: false,
  };
  assert.match(plans(conf).host, /^link add name cni0 type bridge vlan_filtering 1$/m);
  const args = argsFor(schema, "bridge", conf);
  assert.deepEqual(vlanCommands(VETH, args.config), [
    `vlan del vid 1 dev ${VETH}`,
    `vlan add vid 100 dev ${VETH} pvid untagged`,
    `vlan add vid 200 dev ${VETH}`,
    `vlan add vid 300-310 dev ${VETH}`,
  ]);
});

test("without IPAM the container interface is only brought up", () => {
  const args = argsFor(schema, "bridge", {});
  assert.deepEqual(bridgeResult(args, undefined).ips, []);
  assert.equal(containerUpPlan(NETNS, "eth0").plan.text(), "link set eth0 up\nlink show eth0\n");
});

test("an IPAM answer without addresses is refused", () => {
  const args = argsFor(schema, "bridge", { ipam: { type: "host-local" } });
  assert.throws(() => bridgeResult(args, { cniVersion: "1.0.0", ips: [] }), /missing IP config/);
});
