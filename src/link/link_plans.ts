/**
 * The link plugins' `ip -batch` plans as data (macvlan, ipvlan, vlan, dummy, host-device): pure
 * builders whose text tests compare with literal expected commands, without root.
 */
import type { Result } from "../cni/types.js";
import type { Prelude } from "../iproute2/ip.js";
import { IpPlan } from "../iproute2/plan.js";
import { containerPlan, containerUpPlan, type ContainerPlan } from "../iproute2/veth.js";
import type { LinkKind } from "./attach.js";

export interface LinkRequest {
  kind: LinkKind;
  /** Everything after `type <kind>`, e.g. ["mode", "bridge"]. */
  typeArgs: string[];
  /** The parent link (macvlan, ipvlan, vlan); none for dummy. */
  master?: string;
  /** In the container's namespace rather than the host's. */
  masterInContainer?: boolean;
  mtu?: number;
  mac?: string;
}

/**
 * The link born in the container namespace under its final name; with its master in the
 * container, the plan runs there instead.
 */
export function createLinkPlan(req: LinkRequest, netns: string, ifname: string): IpPlan {
  const parts = [`link add ${ifname}`];
  if (req.master) parts.push(`link ${req.master}`);
  if (req.mtu) parts.push(`mtu ${req.mtu}`);
  if (req.mac) parts.push(`address ${req.mac}`);
  if (!req.masterInContainer) parts.push(`netns ${netns}`);
  parts.push(`type ${req.kind}`, ...req.typeArgs);
  const plan = new IpPlan(req.masterInContainer ? { netns } : {});
  plan.run(parts.join(" "));
  return plan;
}

/**
 * Upstream's arp_notify and ndisc_notify for the link, written before it comes up so it announces
 * its addresses; failures ignored as upstream ignores them (ndisc_notify is missing without IPv6).
 * The interface name is the shell's `$1`, never part of the script.
 */
export function notifyPrelude(ifname: string): Prelude {
  return {
    script: [
      'for f in "/proc/sys/net/ipv4/conf/$1/arp_notify" "/proc/sys/net/ipv6/conf/$1/ndisc_notify"; do',
      '  { printf 1 > "$f"; } 2>/dev/null || :',
      "done",
    ].join("\n"),
    args: [ifname],
  };
}

/** The container side: addresses, up, routes of the result (or only up without addresses). */
export function containerLinkPlan(
  netns: string,
  ifname: string,
  result: Result,
  notify: boolean,
): ContainerPlan {
  const prelude = notify ? notifyPrelude(ifname) : undefined;
  return result.ips?.length
    ? containerPlan(netns, ifname, result, { nodad: false, ...(prelude ? { prelude } : {}) })
    : containerUpPlan(netns, ifname, prelude);
}
