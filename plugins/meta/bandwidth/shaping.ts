/**
 * The tc objects the bandwidth plugin makes, as `tc -batch` lines (pure, so tests compare them
 * literally). The layout is upstream's: a tbf at the root of the host veth shapes traffic to the
 * container; traffic from the container is redirected (ingress qdisc + u32 + mirred) to an ifb
 * device whose root tbf shapes it. With `shapedSubnets`/`unshapedSubnets` the root is an htb with a
 * shaped and an unshaped class and u32 filters choosing between them (upstream v1.5's layout).
 */
import { familyOf, subnetOf } from "../../../src/address/index.js";

/** Upstream's tbf latency: the queue holds what the rate drains in this time, plus the burst. */
export const LATENCY_MS = 25;
/** htb class minors (hexadecimal in tc's syntax), as upstream v1.5. */
export const SHAPED_CLASS = "30";
export const UNSHAPED_CLASS = "1";

export interface Limit {
  /** bits per second */
  rate: number;
  /** bits */
  burst: number;
}

/** Which traffic a limit applies to: all of it, only these subnets, or all but these. */
export interface Selection {
  subnets: string[];
  /** true: the subnets are the unshaped ones. */
  exclude: boolean;
}

/** Direction of the shaped traffic: which address of a packet is the far end's. */
export type Far = "src" | "dst";

function bytes(bits: number): number {
  return Math.floor(bits / 8);
}

/** A root tbf (rate in bytes per second: tc's `bps` unit; burst in bytes). */
export function tbfCommand(dev: string, limit: Limit): string {
  return `qdisc add dev ${dev} root handle 1: tbf rate ${bytes(limit.rate)}bps burst ${bytes(limit.burst)} latency ${LATENCY_MS}ms`;
}

/** The root qdisc and, with subnets, the htb classes and filters. */
export function shapingCommands(dev: string, limit: Limit, sel: Selection, far: Far): string[] {
  if (sel.subnets.length === 0) return [tbfCommand(dev, limit)];
  const rate = `${bytes(limit.rate)}bps`;
  const burst = bytes(limit.burst);
  // Unlisted traffic goes to the default class: shaped when the list names what is exempt.
  const dflt = sel.exclude ? SHAPED_CLASS : UNSHAPED_CLASS;
  const target = sel.exclude ? UNSHAPED_CLASS : SHAPED_CLASS;
  const cmds = [
    `qdisc add dev ${dev} root handle 1: htb default ${dflt}`,
    `class add dev ${dev} parent 1: classid 1:${SHAPED_CLASS} htb rate ${rate} ceil ${rate} burst ${burst} cburst ${burst}`,
    `class add dev ${dev} parent 1: classid 1:${UNSHAPED_CLASS} htb rate 100gbit ceil 100gbit`,
  ];
  for (const subnet of sel.subnets) {
    const v6 = familyOf(subnet) === 6;
    // tc refuses host bits in a u32 match: the network address.
    cmds.push(
      `filter add dev ${dev} parent 1: protocol ${v6 ? "ipv6" : "ip"} prio ${v6 ? 15 : 16} u32 match ${v6 ? "ip6" : "ip"} ${far} ${subnetOf(subnet)} flowid 1:${target}`,
    );
  }
  return cmds;
}

/** Redirects everything the host veth receives (what the container sends) to the ifb. */
export function redirectCommands(hostDev: string, ifb: string): string[] {
  return [
    `qdisc add dev ${hostDev} handle ffff: ingress`,
    `filter add dev ${hostDev} parent ffff: protocol all prio 1 u32 match u32 0 0 flowid 1:1 action mirred egress redirect dev ${ifb}`,
  ];
}

/** What the kernel reports for a tbf made from `limit` (upstream's CHECK compares these). */
export function expectedTbf(
  limit: Limit,
  tickInUsec: number,
): { rate: number; limit: number; buffer: number } {
  const rate = bytes(limit.rate);
  const burst = bytes(limit.burst);
  const buffer = Math.floor(Math.floor((burst * 1e6) / rate) * tickInUsec);
  return { rate, limit: Math.floor((rate * LATENCY_MS) / 1000) + burst, buffer };
}

/** Scheduler ticks per microsecond, from /proc/net/psched as tc and netlink compute it. */
export function tickInUsec(psched: string): number {
  const [t2us, us2t, clockRes] = psched
    .trim()
    .split(/\s+/)
    .map((h) => parseInt(h, 16));
  if (!t2us || !us2t || !clockRes) return 1;
  // A nanosecond clock makes ticks and time units the same (tc's tc_core_init).
  const ratio = clockRes === 1_000_000_000 ? 1 : t2us / us2t;
  return ratio * (clockRes / 1_000_000);
}
