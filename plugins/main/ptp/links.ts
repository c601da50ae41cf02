/**
 * The ptp plugin's links as data. The host veth carries each gateway as a /32 (/128) with a host
 * route to the container address; the container address goes on without its prefix route, and
 * the container reaches the gateway by a link route and its subnet through the gateway (upstream
 * adds the prefix route and deletes it again). Pure builders, testable without root.
 */
import { CniError, ErrorCode, type CmdArgs, type IPConfig, type Result } from "../../../src/cni/index.js";
import { addressOf, familyOf, gatewayFor, subnetOf } from "../../../src/address/index.js";
import { IpPlan, type Show } from "../../../src/iproute2/plan.js";
import { containerPlan, type ContainerPlan, type LinkShow } from "../../../src/iproute2/veth.js";
import type { PtpConf } from "./ptp.js";

/** The result before any link exists: every address on the container interface (index 1). */
export function ptpResult(args: CmdArgs<PtpConf>, ipam: Result | undefined): Result {
  if (!ipam?.ips?.length) throw new CniError(ErrorCode.Internal, "IPAM plugin returned missing IP config");
  const ips = ipam.ips.map((ip) => ({ ...ip, interface: 1, gateway: ip.gateway ?? gatewayFor(ip.address) }));
  const c = args.config;
  return {
    cniVersion: args.cniVersion,
    ips,
    routes: ipam.routes ?? [],
    dns: c.dns && Object.keys(c.dns).length ? c.dns : (ipam.dns ?? {}),
  };
}

const hostBits = (ip: IPConfig): number => (familyOf(ip.address) === 6 ? 128 : 32);

export function ptpHostPlan(
  c: PtpConf,
  a: { hostVeth: string; ifname: string; netns: string; ips: readonly IPConfig[] },
): { plan: IpPlan; veth: Show<LinkShow> } {
  const plan = new IpPlan();
  const mtu = c.mtu ? ` mtu ${c.mtu}` : "";
  plan.run(`link add ${a.hostVeth}${mtu} type veth peer name ${a.ifname}${mtu} netns ${a.netns}`);
  plan.run(`link set ${a.hostVeth} up`);
  for (const ip of a.ips) {
    const bits = hostBits(ip);
    plan.run(`addr add ${ip.gateway}/${bits} dev ${a.hostVeth}${bits === 128 ? " nodad" : ""}`);
    plan.run(`route add ${addressOf(ip.address)}/${bits} dev ${a.hostVeth}`);
  }
  return { plan, veth: plan.show<LinkShow>(`link show ${a.hostVeth}`) };
}

export function ptpContainerPlan(netns: string, ifname: string, result: Result): ContainerPlan {
  const linkRoutes = (result.ips ?? []).flatMap((ip) => {
    const src = addressOf(ip.address);
    return [
      `route add ${ip.gateway}/${hostBits(ip)} dev ${ifname} scope link src ${src}`,
      `route add ${subnetOf(ip.address)} via ${ip.gateway} dev ${ifname} src ${src}`,
    ];
  });
  return containerPlan(netns, ifname, result, { nodad: true, noprefixroute: true, extra: linkRoutes });
}
