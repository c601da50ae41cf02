/** ptp ADD's `ip -batch` plans, compared with literal text, without root. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { plugin } from "../../../plugins/main/ptp/ptp.js";
import { ptpContainerPlan, ptpHostPlan, ptpResult } from "../../../plugins/main/ptp/links.js";
import { argsFor, DUAL_STACK_IPAM, NETNS } from "./veth-args.js";

const VETH = "veth0a1b2c3d";

test("dual stack with mtu: gateways as host addresses on the veth, the container routed through them", () => {
  const args = argsFor(plugin.about.config!, "ptp", { ipam: { type: "host-local" }, mtu: 1400 }, "net1");
  const result = ptpResult(args, structuredClone(DUAL_STACK_IPAM));
  const host = ptpHostPlan(args.config, { hostVeth: VETH, ifname: "net1", netns: NETNS, ips: result.ips! });
  assert.equal(
    host.plan.text(),
    `link add ${VETH} mtu 1400 type veth peer name net1 mtu 1400 netns ${NETNS}
link set ${VETH} up
addr add 10.22.0.1/32 dev ${VETH}
route add 10.22.0.5/32 dev ${VETH}
addr add fd22::1/128 dev ${VETH} nodad
route add fd22::5/128 dev ${VETH}
link show ${VETH}
`,
  );
  assert.equal(
    ptpContainerPlan(NETNS, "net1", result).plan.text(),
    `addr add 10.22.0.5/24 dev net1 noprefixroute
addr add fd22::5/64 dev net1 noprefixroute nodad
link set net1 up
route add 10.22.0.1/32 dev net1 scope link src 10.22.0.5
route add 10.22.0.0/24 via 10.22.0.1 dev net1 src 10.22.0.5
route add fd22::1/128 dev net1 scope link src fd22::5
route add fd22::/64 via fd22::1 dev net1 src fd22::5
route prepend 0.0.0.0/0 via 10.22.0.1 dev net1
route prepend ::/0 via fd22::1 dev net1
link show net1
`,
  );
});

test("IPAM's gateway wins over the subnet's first address; no addresses is refused", () => {
  const args = argsFor(plugin.about.config!, "ptp", { ipam: { type: "host-local" } });
  const result = ptpResult(args, {
    cniVersion: "1.0.0",
    ips: [{ address: "10.9.0.7/16", gateway: "10.9.0.254" }],
  });
  assert.deepEqual(result.ips, [{ address: "10.9.0.7/16", gateway: "10.9.0.254", interface: 1 }]);
  assert.throws(() => ptpResult(args, { cniVersion: "1.0.0", ips: [] }), /missing IP config/);
});
