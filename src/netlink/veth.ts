/**
 * The link work shared by bridge and ptp: a veth pair whose peer is created directly inside the
 * container namespace (iproute2 accepts a namespace path for `netns`), then the container side
 * configured in one `ip -batch` run inside it.
 */
import { randomBytes } from "node:crypto";
import type { Result, Route } from "../cni/types.js";
import { classifyMessage } from "../process/errors.js";
import { ipBatch, IpError, type IpBatchResult } from "./ip.js";
import { routeCommands } from "./route.js";

/** `veth` + 8 hex digits, like upstream's random host-side names. */
export function randomVethName(): string {
  return `veth${randomBytes(4).toString("hex")}`;
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

export function asLinks(show: unknown[] | undefined): LinkShow[] {
  return (show ?? []) as LinkShow[];
}

/** Commands that configure the container interface from an IPAM result. */
export function containerConfigCommands(
  ifname: string,
  result: Result,
  opts: { nodad: boolean; extraRoutes?: Route[] },
): string[] {
  const cmds: string[] = [];
  for (const ip of result.ips ?? []) {
    const v6 = ip.address.includes(":");
    cmds.push(`addr add ${ip.address} dev ${ifname}${v6 && opts.nodad ? " nodad" : ""}`);
  }
  cmds.push(`link set ${ifname} up`);
  cmds.push(
    ...routeCommands(ifname, [...(opts.extraRoutes ?? []), ...(result.routes ?? [])], result.ips ?? []),
  );
  return cmds;
}

/** Runs commands in the container namespace and returns the container link as shown at the end. */
export async function configureContainer(netns: string, ifname: string, cmds: string[]): Promise<LinkShow> {
  const res: IpBatchResult = await ipBatch([...cmds, `link show ${ifname}`], { netns, json: true });
  const link = asLinks(res.shows.at(-1))[0];
  if (!link) throw new IpError(`container interface ${ifname} not found after configuring it`, []);
  return link;
}

/** Addresses of the container interface, then deletes it (its veth peer goes with it). */
export async function deleteContainerLink(netns: string, ifname: string): Promise<string[]> {
  const res = await ipBatch([`addr show dev ${ifname}`, `link del ${ifname}`], {
    netns,
    json: true,
    force: true,
  });
  const addrs: string[] = [];
  for (const l of (res.shows[0] ?? []) as Array<{
    addr_info?: Array<{ local: string; prefixlen: number; scope?: string }>;
  }>)
    for (const a of l.addr_info ?? []) if (a.scope !== "link") addrs.push(`${a.local}/${a.prefixlen}`);
  const bad = res.errors.filter((e) => classifyMessage(e.message) !== "not-found");
  if (bad.length) throw new IpError(bad.map((e) => e.message).join("; "), bad);
  return addrs;
}

/**
 * DEL's link part, shared by bridge and ptp: delete the container interface when the namespace
 * is still there; a namespace that is gone already took the link with it, which is success.
 */
export async function deleteContainerLinkIfPresent(netns: string, ifname: string): Promise<void> {
  if (!netns || !validNetnsPath(netns)) return;
  try {
    await deleteContainerLink(netns, ifname);
  } catch (e) {
    if (!(e instanceof IpError && (e.netnsGone || e.notFound))) throw e;
  }
}

/** CHECK's link part: the container interface exists and carries every address of prevResult. */
export async function missingContainerAddresses(
  netns: string,
  ifname: string,
  addresses: string[],
): Promise<string[]> {
  const res = await ipBatch([`addr show dev ${ifname}`], { netns, json: true, force: true });
  if (res.errors.length) return [`container interface ${ifname} in ${netns}`];
  const shown = (res.shows[0] ?? []) as Array<{ addr_info?: Array<{ local: string; prefixlen: number }> }>;
  const have = new Set((shown[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
  return addresses.filter((a) => !have.has(a)).map((a) => `address ${a} on ${ifname}`);
}
