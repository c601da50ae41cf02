/** host-local configuration: schema and canonicalisation, as upstream's allocator.LoadIPAMConfig. */
import * as v from "valibot";
import {
  CniError,
  ErrorCode,
  cidrString,
  configError,
  contains,
  formatCIDR,
  formatIP,
  ipAdd,
  ipEqual,
  ipRangeSchema,
  lastOf,
  netConf,
  networkOf,
  parseCIDR,
  parseIP,
  routeSchema,
  stateDirString,
  versionAtLeast,
  type CIDR,
  type IP,
  type IpRange,
  type Route,
} from "../../../src/cni/index.js";

export const hostLocalIpamSchema = v.looseObject({
  type: v.string(),
  subnet: v.optional(cidrString),
  rangeStart: v.optional(v.string()),
  rangeEnd: v.optional(v.string()),
  gateway: v.optional(v.string()),
  ranges: v.optional(v.array(v.array(ipRangeSchema))),
  routes: v.optional(v.array(routeSchema)),
  dataDir: v.optional(stateDirString),
  resolvConf: v.optional(v.string()),
});

export const hostLocalSchema = netConf({ ipam: hostLocalIpamSchema });
export type HostLocalConf = v.InferOutput<typeof hostLocalSchema>;

/** A canonical range: network, inclusive start/end, gateway. */
export interface Range {
  subnet: CIDR;
  rangeStart: IP;
  rangeEnd: IP;
  gateway: IP;
}
export type RangeSet = Range[];

export interface IpamConfig {
  name: string;
  cniVersion: string;
  ranges: RangeSet[];
  routes: Route[];
  dataDir: string;
  resolvConf: string;
  /** Requested IPs (CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips), canonical. */
  ipArgs: IP[];
}

export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";

function cmp(a: IP, b: IP): number {
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

export function rangeContains(r: Range, ip: IP): boolean {
  return contains(r.subnet, ip) && cmp(ip, r.rangeStart) >= 0 && cmp(ip, r.rangeEnd) <= 0;
}

export function rangeSetContains(s: RangeSet, ip: IP): boolean {
  return s.some((r) => rangeContains(r, ip));
}

export function rangeFor(s: RangeSet, ip: IP): Range {
  const r = s.find((x) => rangeContains(x, ip));
  if (!r) throw new CniError(ErrorCode.Internal, `${formatIP(ip)} not in range set ${rangeSetString(s)}`);
  return r;
}

export function rangeString(r: Range): string {
  return `${formatIP(r.rangeStart)}-${formatIP(r.rangeEnd)}`;
}

export function rangeSetString(s: RangeSet): string {
  return s.map(rangeString).join(",");
}

function rangesOverlap(a: Range, b: Range): boolean {
  if (a.subnet.ip.family !== b.subnet.ip.family) return false;
  return (
    rangeContains(a, b.rangeStart) ||
    rangeContains(a, b.rangeEnd) ||
    rangeContains(b, a.rangeStart) ||
    rangeContains(b, a.rangeEnd)
  );
}

function ipField(s: string | undefined, what: string): IP | undefined {
  if (s === undefined || s === "") return undefined;
  const ip = parseIP(s);
  if (!ip) throw configError(`invalid ${what} "${s}"`);
  return ip;
}

/** Range.Canonicalize: network address without host bits, defaults for gateway/start/end. */
export function canonicalizeRange(r: IpRange): Range {
  const c = parseCIDR(r.subnet);
  if (!c) throw configError(`invalid subnet "${r.subnet}"`);
  const b = c.ip.family === 4 ? 32 : 128;
  if (c.prefix > b - 2) throw configError(`Network ${formatCIDR(c)} too small to allocate from`);
  const net = networkOf(c);
  if (!ipEqual(net, c.ip)) {
    throw configError(
      `network has host bits set. For a subnet mask of length ${c.prefix} the network address is ${formatIP(net)}`,
    );
  }
  const subnet: CIDR = { ip: net, prefix: c.prefix };
  const gateway = ipField(r.gateway, "gateway") ?? ipAdd(net, 1n);
  const partial = {
    subnet,
    rangeStart: { family: net.family, value: -1n },
    rangeEnd: lastOf(subnet),
    gateway,
  };
  const start = ipField(r.rangeStart, "rangeStart");
  if (start && !contains(subnet, start)) {
    throw configError(`RangeStart ${formatIP(start)} not in network ${formatCIDR(subnet)}`);
  }
  const end = ipField(r.rangeEnd, "rangeEnd");
  if (end && !contains(subnet, end)) {
    throw configError(`RangeEnd ${formatIP(end)} not in network ${formatCIDR(subnet)}`);
  }
  const last = lastOf(subnet);
  const where = formatCIDR(subnet);
  // Upstream accepts these and then hands out the network or broadcast address, or nothing.
  if (!contains(subnet, gateway)) throw configError(`gateway ${formatIP(gateway)} not in network ${where}`);
  if (start && ipEqual(start, net))
    throw configError(`rangeStart ${formatIP(start)} is the network address of ${where}; start after it`);
  if (end && net.family === 4 && ipEqual(end, last))
    throw configError(`rangeEnd ${formatIP(end)} is the broadcast address of ${where}; end before it`);
  const range = {
    ...partial,
    rangeStart: start ?? ipAdd(net, 1n),
    rangeEnd: end ?? (net.family === 4 ? ipAdd(last, -1n) : last),
  };
  if (cmp(range.rangeStart, range.rangeEnd) > 0)
    throw configError(
      `rangeStart ${formatIP(range.rangeStart)} is after rangeEnd ${formatIP(range.rangeEnd)}`,
    );
  return range;
}

function canonicalizeRangeSet(s: IpRange[]): RangeSet {
  if (s.length === 0) throw configError("empty range set");
  const out = s.map(canonicalizeRange);
  if (out.some((r) => r.subnet.ip.family !== out[0]!.subnet.ip.family))
    throw configError("mixed address families");
  for (let i = 0; i < out.length; i++)
    for (let j = i + 1; j < out.length; j++)
      if (rangesOverlap(out[i]!, out[j]!))
        throw configError(`subnets ${rangeString(out[i]!)} and ${rangeString(out[j]!)} overlap`);
  return out;
}

function requested(s: string): IP {
  const ip = parseIP(s) ?? parseCIDR(s)?.ip;
  if (!ip) throw configError(`invalid IP "${s}"`);
  return ip;
}

/** Builds the canonical IPAM config from the validated net config and CNI_ARGS. */
export function loadIpamConfig(conf: HostLocalConf, cniArgs: Record<string, string>): IpamConfig {
  const ipam = conf.ipam;
  if (!ipam) throw configError("IPAM config missing 'ipam' key");
  const ipArgs: IP[] = [];
  if (cniArgs.IP !== undefined && cniArgs.IP !== "") {
    for (const item of cniArgs.IP.split(",")) {
      const ip = parseIP(item.trim());
      if (!ip) throw configError(`invalid IP "${item.trim()}"`);
      ipArgs.push(ip);
    }
  }
  for (const s of conf.args?.cni?.ips ?? []) ipArgs.push(requested(s));
  for (const s of conf.runtimeConfig?.ips ?? []) ipArgs.push(requested(s));

  const rawSets: IpRange[][] = [];
  if (conf.runtimeConfig?.ipRanges?.length) rawSets.push(...conf.runtimeConfig.ipRanges);
  if (ipam.subnet) {
    rawSets.push([
      { subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway },
    ]);
  }
  rawSets.push(...(ipam.ranges ?? []));
  if (rawSets.length === 0) throw configError("no IP ranges specified");
  const ranges = rawSets.map((s, i) => {
    try {
      return canonicalizeRangeSet(s);
    } catch (e) {
      throw configError(`invalid range set ${i}: ${(e as Error).message}`);
    }
  });
  const v4 = ranges.filter((s) => s[0]!.subnet.ip.family === 4).length;
  const v6 = ranges.length - v4;
  if ((v4 > 1 || v6 > 1) && !versionAtLeast(conf.cniVersion, "0.3.0")) {
    throw configError(`CNI version ${conf.cniVersion} does not support more than 1 address per family`);
  }
  for (let i = 0; i < ranges.length; i++)
    for (let j = i + 1; j < ranges.length; j++)
      if (ranges[i]!.some((a) => ranges[j]!.some((b) => rangesOverlap(a, b))))
        throw configError(`range set ${i} overlaps with ${j}`);

  const routes: Route[] = (ipam.routes ?? []).map((r) => {
    const dst = parseCIDR(r.dst)!;
    const out: Route = { ...r, dst: formatCIDR(dst) };
    if (r.gw !== undefined) out.gw = formatIP(parseIP(r.gw)!);
    return out;
  });
  return {
    name: conf.name,
    cniVersion: conf.cniVersion,
    ranges,
    routes,
    dataDir: ipam.dataDir || DEFAULT_DATA_DIR,
    resolvConf: ipam.resolvConf ?? "",
    ipArgs,
  };
}
