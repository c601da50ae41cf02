/**
 * The bridge plugin's host side as data: the result built from IPAM's answer, the host plan
 * (bridge, gateway addresses, the veth pair with its peer born in the container, port flags) and
 * what happens after it ran (gateway address conflicts, VLANs). Pure builders, so a test compares
 * the plans with literal `ip -batch` text without root.
 */
import { CniError, ErrorCode, type CmdArgs, type IPConfig, type Result } from "../../../src/cni/index.js";
import { defaultRoute, familyOf, gatewayFor, subnetOf } from "../../../src/address/index.js";
import { IpPlan, type PlanOutcome, type Show, type Step } from "../../../src/iproute2/plan.js";
import type { LinkShow } from "../../../src/iproute2/veth.js";
import { systemRunner, type Runner } from "../../../src/process/index.js";
import type { BridgeConf } from "./config.js";

export function isGateway(c: BridgeConf): boolean {
  return c.isGateway || c.isDefaultGateway;
}

export function vlanFiltering(c: BridgeConf): boolean {
  return c.vlan !== 0 || c.vlanTrunk !== undefined;
}

/**
 * The result before any link exists: IPAM's addresses (on the container interface, index 2) with
 * the subnet's first address as gateway when the bridge is one, IPAM's routes, and a default
 * route per family for isDefaultGateway unless IPAM gave one with a gateway (as upstream).
 */
export function bridgeResult(args: CmdArgs<BridgeConf>, ipam: Result | undefined): Result {
  const c = args.config;
  if (c.ipam?.type && !ipam?.ips?.length)
    throw new CniError(ErrorCode.Internal, "IPAM plugin returned missing IP config");
  const result: Result = {
    cniVersion: args.cniVersion,
    interfaces: [],
    ips: [],
    routes: [...(ipam?.routes ?? [])],
    dns: c.dns && Object.keys(c.dns).length ? c.dns : (ipam?.dns ?? {}),
  };
  for (const ip of ipam?.ips ?? []) {
    const gateway = ip.gateway ?? (isGateway(c) ? gatewayFor(ip.address) : undefined);
    result.ips!.push({ ...ip, interface: 2, ...(gateway ? { gateway } : {}) });
  }
  if (c.isDefaultGateway)
    for (const fam of [4, 6] as const) {
      const ip = result.ips!.find((i) => familyOf(i.address) === fam);
      if (!ip?.gateway) continue;
      const dflt = defaultRoute(fam);
      if (!result.routes!.some((r) => r.dst === dflt && r.gw))
        result.routes!.push({ dst: dflt, gw: ip.gateway });
    }
  return result;
}

export interface BridgeHostPlan {
  plan: IpPlan;
  /** `addr show` of the bridge (with details: its kind, to refuse a non-bridge of that name). */
  bridge: Show<LinkShow>;
  veth: Show<LinkShow>;
  /** The gateway address steps, in the order of `ips`. */
  gatewayAddresses: Array<{ ip: IPConfig; step: Step }>;
}

/** One `ip -batch` on the host; the bridge and a gateway address that exist already are fine. */
export function hostPlan(
  c: BridgeConf,
  a: { hostVeth: string; ifname: string; netns: string; mac?: string; ips: readonly IPConfig[] },
): BridgeHostPlan {
  const plan = new IpPlan({ details: true });
  const mtu = c.mtu ? ` mtu ${c.mtu}` : "";
  plan.ensure(`link add name ${c.bridge}${mtu} type bridge${vlanFiltering(c) ? " vlan_filtering 1" : ""}`);
  plan.run(`link set ${c.bridge} up${c.promiscMode ? " promisc on" : ""}`);
  const gatewayAddresses = isGateway(c)
    ? a.ips.map((ip) => ({
        ip,
        step: plan.ensure(`addr add ${ip.gateway}/${ip.address.split("/")[1]} dev ${c.bridge}`),
      }))
    : [];
  const mac = a.mac ? ` address ${a.mac}` : "";
  plan.run(`link add ${a.hostVeth}${mtu} type veth peer name ${a.ifname}${mtu}${mac} netns ${a.netns}`);
  plan.run(`link set ${a.hostVeth} master ${c.bridge} up`);
  plan.run(
    `link set ${a.hostVeth} type bridge_slave hairpin ${c.hairpinMode ? "on" : "off"}${c.portIsolation ? " isolated on" : ""}`,
  );
  const bridge = plan.show<LinkShow>(`addr show dev ${c.bridge}`);
  const veth = plan.show<LinkShow>(`link show ${a.hostVeth}`);
  return { plan, bridge, veth, gatewayAddresses };
}

/**
 * As upstream's ensureAddr: another address of a gateway's subnet on the bridge is an error,
 * unless forceAddress, which replaces it. Checked after the host plan ran (one process for the
 * common case); on error the gateway addresses this ADD added are taken off again.
 */
export async function reconcileGatewayAddresses(
  c: BridgeConf,
  host: BridgeHostPlan,
  out: PlanOutcome,
  br: LinkShow,
  runner?: Runner,
): Promise<void> {
  const others: string[] = [];
  for (const { ip } of host.gatewayAddresses) {
    const subnet = subnetOf(ip.address);
    for (const a of br.addr_info ?? []) {
      const cidr = `${a.local}/${a.prefixlen}`;
      if (
        a.local !== ip.gateway &&
        a.scope !== "link" &&
        familyOf(cidr) === familyOf(subnet) &&
        subnetOf(cidr) === subnet
      )
        others.push(cidr);
    }
  }
  if (others.length === 0) return;
  if (c.forceAddress) {
    // Deleting a primary address takes its secondaries (our gateway) along: add them back.
    const replace = new IpPlan();
    for (const o of others) replace.run(`addr del ${o} dev ${c.bridge}`);
    for (const g of host.gatewayAddresses) replace.ensure(g.step.command);
    await replace.execute(runner);
    return;
  }
  const undo = new IpPlan();
  for (const g of host.gatewayAddresses)
    if (out.changed(g.step)) undo.remove(g.step.command.replace(/^addr add /, "addr del "));
  if (undo.length) await undo.execute(runner).catch(() => undefined);
  throw new CniError(
    ErrorCode.Internal,
    `${c.bridge} already has an IP address different from the gateway (${others.join(", ")}); set forceAddress to replace it`,
  );
}

/** The `bridge -batch` lines for the port's VLANs. */
export function vlanCommands(hostVeth: string, c: BridgeConf): string[] {
  const cmds: string[] = [];
  if (!c.preserveDefaultVlan) cmds.push(`vlan del vid 1 dev ${hostVeth}`);
  if (c.vlan) cmds.push(`vlan add vid ${c.vlan} dev ${hostVeth} pvid untagged`);
  for (const t of c.vlanTrunk ?? []) {
    if (t.id !== undefined) cmds.push(`vlan add vid ${t.id} dev ${hostVeth}`);
    else if (t.minID !== undefined && t.maxID !== undefined)
      cmds.push(`vlan add vid ${t.minID}-${t.maxID} dev ${hostVeth}`);
  }
  return cmds;
}

export async function setupVlans(
  hostVeth: string,
  c: BridgeConf,
  runner: Runner = systemRunner,
): Promise<void> {
  const res = await runner.run({
    argv: ["bridge", "-batch", "-"],
    stdin: vlanCommands(hostVeth, c).join("\n") + "\n",
  });
  if (res.code !== 0)
    throw new CniError(ErrorCode.Internal, `setting VLANs on ${hostVeth}: ${res.stderr.trim()}`);
}
