/**
 * A kernel link made for a container and configured from an IPAM result: the work macvlan,
 * ipvlan, vlan and dummy share (upstream's createMacvlan/createIpvlan/... and ConfigureIface).
 *
 * The link is born in the container's namespace under its final name (`ip link add NAME ...
 * netns PATH`: the kernel creates it there, so a name taken on the host never collides), from a
 * master looked up on the host or, with `linkInContainer`, in the container. The container side is
 * then configured by one `ip -batch` behind a tiny shell that first sets upstream's arp_notify and
 * ndisc_notify sysctls (per namespace, so they must be written from inside it). Every ip run is a
 * typed plan (src/iproute2/plan.ts); the plans themselves are built in ./link_plans.ts.
 */
import { classifyMessage } from "../process/errors.js";
import { CniError, ErrorCode } from "../cni/errors.js";
import { delegateIpam } from "../cni/ipam.js";
import type { CmdArgs } from "../cni/skel.js";
import { parseMac, unicastMacProblem } from "../address/index.js";
import type { Result } from "../cni/types.js";
import type { Runner } from "../process/runner.js";
import { IpError } from "../iproute2/ip.js";
import { IpPlan } from "../iproute2/plan.js";
import {
  configureContainer,
  deleteContainerLinkIfPresent,
  validNetnsPath,
  type LinkShow,
} from "../iproute2/veth.js";
import { containerLinkPlan, createLinkPlan, type LinkRequest } from "./link_plans.js";

export type { LinkRequest };

/** Link kinds a plugin makes, and the kernel feature each needs (for the error when it is missing). */
export const KERNEL_FEATURES = {
  macvlan: "macvlan (CONFIG_MACVLAN, module macvlan)",
  ipvlan: "ipvlan (CONFIG_IPVLAN, module ipvlan)",
  vlan: "802.1Q VLAN (CONFIG_VLAN_8021Q, module 8021q)",
  dummy: "dummy links (CONFIG_DUMMY, module dummy)",
  vrf: "VRF (CONFIG_NET_VRF, module vrf)",
  ifb: "ifb (CONFIG_IFB, module ifb)",
} as const;
export type LinkKind = keyof typeof KERNEL_FEATURES;

/** The CNI error for a link type the kernel does not know; nothing was changed. */
export function missingKernelFeature(kind: LinkKind, detail: string): CniError {
  return new CniError(
    ErrorCode.PluginNotAvailable,
    `this kernel cannot create ${kind} links: it lacks ${KERNEL_FEATURES[kind]}`,
    detail,
  );
}

/** True for the errors iproute2 reports when the kernel has no such link type. */
export function isUnknownLinkType(message: string): boolean {
  return classifyMessage(message) === "unsupported";
}

/** A MAC address from the config or the runtime, canonical; refused with upstream's message. */
export function macArg(mac: string): string {
  const canonical = parseMac(mac);
  const problem = unicastMacProblem(mac);
  if (canonical !== undefined && problem === undefined) return canonical;
  if (canonical !== undefined)
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `MAC address ${mac} ${problem}: give a unicast address such as 0a:58:0a:00:00:02`,
    );
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    `invalid args ${mac} for MAC addr: address ${mac}: invalid MAC address`,
  );
}

export function checkNetns(netns: string): void {
  if (!validNetnsPath(netns))
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `CNI_NETNS ${JSON.stringify(netns)} is not a usable path`,
    );
}

interface ShownLink {
  ifname: string;
  ifalias?: string;
  ifindex: number;
  mtu: number;
  address?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

/** The interface of the namespace's first default route (upstream's default `master`). */
export async function defaultRouteInterface(netns?: string): Promise<string> {
  const plan = new IpPlan(netns ? { netns } : {});
  const show = plan.show<{ dst: string; dev?: string }>("route show table main");
  const routes = (await plan.execute()).shown(show);
  const dev = routes.find((r) => r.dst === "default" && r.dev)?.dev;
  if (!dev) throw new CniError(ErrorCode.Internal, "no default route interface found");
  return dev;
}

/** A link of the host, or of the container's namespace; undefined when there is none (or no namespace). */
export async function showLink(name: string, netns?: string): Promise<ShownLink | undefined> {
  const plan = new IpPlan({ details: true, ...(netns ? { netns } : {}) });
  const show = plan.show<ShownLink>(`link show dev ${name}`, "missing");
  // A namespace that is gone has no such link either.
  const out = await plan.execute().catch((e: unknown) => {
    if (e instanceof IpError && e.errors.length) return undefined;
    throw e;
  });
  return out?.shown(show)[0];
}

/** The master link, refused like upstream when missing. */
export async function lookupMaster(master: string, netns?: string): Promise<ShownLink> {
  const link = await showLink(master, netns);
  if (!link) throw new CniError(ErrorCode.Internal, `failed to lookup master "${master}": Link not found`);
  return link;
}

/** Creates the link in the container namespace as `ifname`. Fails changing nothing. */
export async function createContainerLink(req: LinkRequest, netns: string, ifname: string): Promise<void> {
  try {
    await createLinkPlan(req, netns, ifname).execute();
  } catch (e) {
    const msg = (e as Error).message;
    if (isUnknownLinkType(msg)) throw missingKernelFeature(req.kind, msg);
    if (req.master && /Cannot find device/i.test(msg))
      throw new CniError(ErrorCode.Internal, `failed to lookup master "${req.master}": Link not found`);
    if (/File exists/i.test(msg))
      throw new CniError(
        ErrorCode.Internal,
        `failed to create ${req.kind}: interface ${ifname} exists in ${netns}`,
      );
    throw new CniError(ErrorCode.Internal, `failed to create ${req.kind}: ${msg}`);
  }
}

/**
 * Configures `ifname` in the container from `result` (addresses, up, routes; or only up when the
 * result has no addresses) in one run and returns the link as shown afterwards.
 */
export function configureContainerLink(
  netns: string,
  ifname: string,
  result: Result,
  opts: { notify?: boolean; runner?: Runner } = {},
): Promise<LinkShow> {
  return configureContainer(containerLinkPlan(netns, ifname, result, opts.notify !== false), opts.runner);
}

/** The config keys the shared link flow reads. */
type LinkConf = { ipam?: { type?: string }; dns?: Result["dns"] };

/**
 * ADD's shared part: make the link (`create`, which must change nothing when it fails), get
 * addresses from IPAM (none without `ipam.type`: layer 2 only), configure the container, and undo
 * everything when a step fails. As upstream, the result carries IPAM's addresses (`interface: 0`)
 * and routes, and the config's `dns` (not IPAM's).
 */
export async function attachLink(
  args: CmdArgs<LinkConf>,
  opts: {
    create: () => Promise<void>;
    /** Undoes `create` (default: delete the link in the container). */
    undo?: () => Promise<void>;
    /** Set arp_notify and ndisc_notify (default true). */
    notify?: boolean;
    /** Addresses to use instead of asking IPAM (ipvlan chained after a plugin that has them). */
    addresses?: Result;
  },
): Promise<Result> {
  const { netns, ifname } = args;
  await opts.create();
  let allocated = false;
  try {
    let result: Result = { cniVersion: args.cniVersion, interfaces: [] };
    if (opts.addresses || args.config.ipam?.type) {
      const ipam = opts.addresses ?? (await delegateIpam(args, "ADD"));
      allocated = !opts.addresses;
      if (!ipam?.ips?.length)
        throw new CniError(ErrorCode.Internal, "IPAM plugin returned missing IP config");
      result = {
        cniVersion: args.cniVersion,
        ips: ipam.ips.map((ip) => ({ ...ip, interface: 0 })),
        routes: ipam.routes ?? [],
      };
    }
    const link = await configureContainerLink(netns, ifname, result, { notify: opts.notify !== false });
    result.interfaces = [{ name: ifname, mac: link.address ?? "", sandbox: netns }];
    if (args.config.dns) result.dns = args.config.dns;
    return result;
  } catch (e) {
    await (opts.undo ?? (() => deleteContainerLinkIfPresent(netns, ifname)))().catch(() => undefined);
    if (allocated) await delegateIpam(args, "DEL").catch(() => undefined);
    throw e instanceof IpError ? new CniError(ErrorCode.Internal, e.message) : e;
  }
}

/** DEL's shared part, in upstream's order: release the address, then delete the link. */
export async function detachLinkAndAddress(args: CmdArgs<LinkConf>): Promise<void> {
  if (args.config.ipam?.type) await delegateIpam(args);
  if (!args.netns) return;
  await detachLink(args.netns, args.ifname);
}

/** CHECK's link part: the interface prevResult names is ours, of `kind`, in the container. */
export async function checkContainerLink(opts: {
  netns: string;
  ifname: string;
  prev: Result;
  /** The link's kind, when the plugin made it. */
  kind?: LinkKind;
  /** Expected `linkinfo.info_data` values (e.g. { mode: "bridge" }). */
  data?: Record<string, unknown>;
}): Promise<void> {
  const fail = (msg: string): never => {
    throw new CniError(ErrorCode.Internal, msg);
  };
  const intf = opts.prev.interfaces?.find((i) => i.name === opts.ifname && i.sandbox === opts.netns);
  if (!intf)
    fail(
      `Sandbox in prevResult ${opts.prev.interfaces?.find((i) => i.name === opts.ifname)?.sandbox ?? ""} doesn't match configured netns: ${opts.netns}`,
    );
  const link = await showLink(opts.ifname, opts.netns);
  if (!link) return fail(`Container Interface name in prevResult: ${opts.ifname} not found`);
  if (opts.kind && link.linkinfo?.info_kind !== opts.kind)
    fail(`Error: Container interface ${opts.ifname} not of type ${opts.kind}`);
  for (const [k, want] of Object.entries(opts.data ?? {})) {
    const have = link.linkinfo?.info_data?.[k];
    if (have !== want)
      fail(`container ${opts.kind} ${k} ${String(have)} does not match expected value: ${String(want)}`);
  }
  if (intf!.mac && intf!.mac.toLowerCase() !== (link.address ?? "").toLowerCase())
    fail(`interface ${opts.ifname} Mac ${intf!.mac} doesn't match container Mac: ${link.address ?? ""}`);
  await checkAddressesAndRoutes(opts.netns, opts.ifname, opts.prev);
}

/**
 * CHECK of a plugin that made a link: IPAM's CHECK, then prevResult's interface checked as
 * `checkContainerLink` does (upstream's order).
 */
export async function checkLinkAndAddress(
  args: CmdArgs<LinkConf>,
  kind: LinkKind,
  data?: Record<string, unknown>,
): Promise<void> {
  checkNetns(args.netns);
  if (args.config.ipam?.type) await delegateIpam(args);
  const prev = args.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, "Required prevResult missing");
  await checkContainerLink({ netns: args.netns, ifname: args.ifname, prev, kind, ...(data ? { data } : {}) });
}

/** Every address of prevResult on the interface and every route in the namespace (upstream's ValidateExpected*). */
export async function checkAddressesAndRoutes(netns: string, ifname: string, prev: Result): Promise<void> {
  const plan = new IpPlan({ netns });
  const link = plan.show<{ addr_info?: Array<{ local: string; prefixlen: number }> }>(
    `addr show dev ${ifname}`,
  );
  const table = plan.show<{ dst: string; gateway?: string }>("route show table all");
  const out = await plan.execute();
  const addrs = new Set(out.shown(link)[0]?.addr_info?.map((a) => `${a.local}/${a.prefixlen}`) ?? []);
  for (const ip of prev.ips ?? [])
    if (!addrs.has(ip.address))
      throw new CniError(ErrorCode.Internal, `Failed to match addr ${ip.address} on interface ${ifname}`);
  const routes = out.shown(table);
  const norm = (d: string): string => (d === "default" ? "" : d.replace(/\/(32|128)$/, ""));
  for (const r of prev.routes ?? []) {
    const dst = /^(0\.0\.0\.0|::)\/0$/.test(r.dst) ? "" : r.dst.replace(/\/(32|128)$/, "");
    const found = routes.some((x) => norm(x.dst) === dst && (!r.gw || x.gateway === r.gw));
    if (!found)
      throw new CniError(
        ErrorCode.Internal,
        `Failed to find a route to ${r.dst}${r.gw ? ` via ${r.gw}` : ""}`,
      );
  }
}

/** DEL's link part: the namespace or the link being gone is success. */
export async function detachLink(netns: string, ifname: string): Promise<void> {
  await deleteContainerLinkIfPresent(netns, ifname).catch((e: unknown) => {
    throw new CniError(ErrorCode.Internal, (e as Error).message);
  });
}
