/**
 * The link work shared by the veth plugins (bridge, ptp): a veth pair whose peer is created
 * directly inside the container namespace (iproute2 accepts a namespace path for `netns`), then
 * the container side configured by one plan run inside it.
 */
import { familyOf } from "../address/index.js";
import type { Runner } from "../process/runner.js";
import { IpError, type Prelude } from "./ip.js";
import { IpPlan, type Show } from "./plan.js";
import { routeCommands, type GatewaySource, type RouteSpec } from "./route.js";

/** `veth` + 8 hex digits, like upstream's random host-side names. */
export function randomVethName(): string {
  // Web Crypto's global, not node:crypto: loading that module costs a plugin start ~1.5 ms.
  return `veth${Buffer.from(crypto.getRandomValues(new Uint8Array(4))).toString("hex")}`;
}

/** Namespace paths go into `ip -batch` lines and nsenter arguments: no spaces or quotes. */
export function validNetnsPath(path: string): boolean {
  return /^\/[A-Za-z0-9_./:@-]+$/.test(path) && !path.includes("..");
}

export interface LinkShow {
  ifname: string;
  address?: string;
  mtu?: number;
  operstate?: string;
  linkinfo?: { info_kind?: string };
  addr_info?: Array<{ local: string; prefixlen: number; scope?: string }>;
}

/** An address as an IPAM result carries it, with the gateway its routes may default to. */
export type ContainerAddress = GatewaySource;

/** The container side of an attachment: a plan, and the handle of the link shown at its end. */
export interface ContainerPlan {
  plan: IpPlan;
  link: Show<LinkShow>;
}

/**
 * The container side as upstream's ConfigureIface does it: addresses, link up, routes of the
 * result (gateway of the family when a route has none); `extra` runs after the link is up and
 * before the result's routes (ptp's link routes to its gateway).
 */
export function containerPlan(
  netns: string,
  ifname: string,
  result: { ips?: readonly ContainerAddress[]; routes?: readonly RouteSpec[] },
  opts: { nodad: boolean; noprefixroute?: boolean; extra?: readonly string[]; prelude?: Prelude },
): ContainerPlan {
  const plan = new IpPlan({ netns, ...(opts.prelude ? { prelude: opts.prelude } : {}) });
  for (const ip of result.ips ?? []) {
    const v6 = familyOf(ip.address) === 6;
    const flags = `${opts.noprefixroute ? " noprefixroute" : ""}${v6 && opts.nodad ? " nodad" : ""}`;
    plan.run(`addr add ${ip.address} dev ${ifname}${flags}`);
  }
  plan.run(`link set ${ifname} up`);
  for (const cmd of opts.extra ?? []) plan.run(cmd);
  for (const cmd of routeCommands(ifname, result.routes ?? [], result.ips ?? [])) plan.run(cmd);
  return { plan, link: plan.show<LinkShow>(`link show ${ifname}`) };
}

/** A container plan that only brings the interface up (a bridge port without IPAM). */
export function containerUpPlan(netns: string, ifname: string, prelude?: Prelude): ContainerPlan {
  const plan = new IpPlan({ netns, ...(prelude ? { prelude } : {}) });
  plan.run(`link set ${ifname} up`);
  return { plan, link: plan.show<LinkShow>(`link show ${ifname}`) };
}

/** Runs a container plan and returns the container link as shown at its end. */
export async function configureContainer(p: ContainerPlan, runner?: Runner): Promise<LinkShow> {
  const link = (await p.plan.execute(runner)).shown(p.link)[0];
  if (!link) throw new IpError(`container interface not found after configuring it: ${p.link.command}`, []);
  return link;
}

/** Deletes a host-side link (a veth takes its container peer along); gone already is success. */
export async function deleteHostLink(name: string, runner?: Runner): Promise<void> {
  const plan = new IpPlan();
  plan.remove(`link del ${name}`);
  await plan.execute(runner);
}

/**
 * DEL's link part: delete the container interface when the namespace is still there; a namespace
 * that is gone already took the link with it, which is success.
 */
export async function deleteContainerLinkIfPresent(
  netns: string,
  ifname: string,
  runner?: Runner,
): Promise<void> {
  if (!netns || !validNetnsPath(netns)) return;
  const plan = new IpPlan({ netns });
  plan.remove(`link del ${ifname}`);
  try {
    await plan.execute(runner);
  } catch (e) {
    if (!(e instanceof IpError && (e.netnsGone || e.notFound))) throw e;
  }
}

/** CHECK's link part: the container interface exists and carries every address of prevResult. */
export async function missingContainerAddresses(
  netns: string,
  ifname: string,
  addresses: readonly string[],
  runner?: Runner,
): Promise<string[]> {
  const plan = new IpPlan({ netns });
  const shown = plan.show<LinkShow>(`addr show dev ${ifname}`, "missing");
  const gone = [`container interface ${ifname} in ${netns}`];
  const out = await plan.execute(runner).catch(() => undefined); // no namespace: no interface
  if (!out || out.failure(shown)) return gone;
  const have = new Set((out.shown(shown)[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
  return addresses.filter((a) => !have.has(a)).map((a) => `address ${a} on ${ifname}`);
}
