/**
 * CNI versions and result conversion between them, following libcni: 0.1.0/0.2.0 results have
 * `ip4`/`ip6`; 0.3.x/0.4.0 have `interfaces`/`ips` (with `version`)/`routes`; 1.0.0 drops
 * `ips[].version`; 1.1.0 adds interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope.
 */
import { familyOf } from "../address/index.js";
import { compareVersions as compareDotted } from "../nftables/version.js";
import { CniError, ErrorCode } from "./errors.js";
import type { DNS, Interface, IPConfig, Result, Route } from "./types.js";

export const SUPPORTED_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
export const CURRENT_VERSION = "1.1.0";
/** cniVersion assumed when a config has none (libcni's rule). */
export const DEFAULT_CONFIG_VERSION = "0.1.0";

function mustBeVersion(v: string): string {
  if (!/^\d+\.\d+\.\d+$/.test(v)) throw new CniError(ErrorCode.DecodingFailure, `invalid version "${v}"`);
  return v;
}

/** Compares two "x.y.z" versions: negative, 0 or positive; anything else is a decoding error. */
export function compareVersions(a: string, b: string): number {
  return compareDotted(mustBeVersion(a), mustBeVersion(b));
}

export function versionAtLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function bad(what: string): CniError {
  return new CniError(ErrorCode.DecodingFailure, `failed to decode result`, what);
}

function str(o: Record<string, unknown>, k: string, where: string, required = false): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) {
    if (required) throw bad(`${where}.${k} is missing`);
    return undefined;
  }
  if (typeof v !== "string") throw bad(`${where}.${k} must be a string`);
  return v;
}

function num(o: Record<string, unknown>, k: string, where: string): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) throw bad(`${where}.${k} must be an integer`);
  return v;
}

function strList(o: Record<string, unknown>, k: string, where: string): string[] | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) throw bad(`${where}.${k} must be strings`);
  return v as string[];
}

function list(o: Record<string, unknown>, k: string, where: string): Record<string, unknown>[] {
  const v = o[k];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every(isObj)) throw bad(`${where}.${k} must be a list of objects`);
  return v;
}

function dropUndefined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

function parseDns(x: unknown): DNS | undefined {
  if (x === undefined || x === null) return undefined;
  if (!isObj(x)) throw bad("dns must be an object");
  return dropUndefined({
    nameservers: strList(x, "nameservers", "dns"),
    domain: str(x, "domain", "dns"),
    search: strList(x, "search", "dns"),
    options: strList(x, "options", "dns"),
  });
}

function parseRoute(r: Record<string, unknown>, where: string): Route {
  return dropUndefined({
    dst: str(r, "dst", where, true)!,
    gw: str(r, "gw", where),
    mtu: num(r, "mtu", where),
    advmss: num(r, "advmss", where),
    priority: num(r, "priority", where),
    table: num(r, "table", where),
    scope: num(r, "scope", where),
  });
}

/** `ips[].version` of results before 1.0.0: the address family as libcni decides it. */
function versionField(addr: string): "4" | "6" {
  return familyOf(addr) === 4 ? "4" : "6";
}

/**
 * Parses a result of any supported version into current form. The result's own `cniVersion` wins;
 * `fallbackVersion` (the config's) is used when it has none.
 */
export function parseResult(raw: unknown, fallbackVersion: string = CURRENT_VERSION): Result {
  if (!isObj(raw)) throw bad("result must be a JSON object");
  const version = str(raw, "cniVersion", "result") || fallbackVersion;
  if (!SUPPORTED_VERSIONS.includes(version as (typeof SUPPORTED_VERSIONS)[number])) {
    throw new CniError(ErrorCode.IncompatibleVersion, `unsupported result version "${version}"`);
  }
  const dns = parseDns(raw.dns);
  if (compareVersions(version, "0.3.0") < 0) {
    const ips: IPConfig[] = [];
    const routes: Route[] = [];
    for (const fam of ["ip4", "ip6"] as const) {
      const c = raw[fam];
      if (c === undefined || c === null) continue;
      if (!isObj(c)) throw bad(`${fam} must be an object`);
      ips.push(dropUndefined({ address: str(c, "ip", fam, true)!, gateway: str(c, "gateway", fam) }));
      for (const [i, r] of list(c, "routes", fam).entries())
        routes.push(parseRoute(r, `${fam}.routes[${i}]`));
    }
    return dropUndefined({
      cniVersion: version,
      ips: ips.length ? ips : undefined,
      routes: routes.length ? routes : undefined,
      dns,
    });
  }
  const interfaces = list(raw, "interfaces", "result").map((i, n): Interface =>
    dropUndefined({
      name: str(i, "name", `interfaces[${n}]`, true)!,
      mac: str(i, "mac", `interfaces[${n}]`),
      mtu: num(i, "mtu", `interfaces[${n}]`),
      sandbox: str(i, "sandbox", `interfaces[${n}]`),
      socketPath: str(i, "socketPath", `interfaces[${n}]`),
      pciID: str(i, "pciID", `interfaces[${n}]`),
    }),
  );
  const ips = list(raw, "ips", "result").map((i, n): IPConfig =>
    dropUndefined({
      interface: num(i, "interface", `ips[${n}]`),
      address: str(i, "address", `ips[${n}]`, true)!,
      gateway: str(i, "gateway", `ips[${n}]`),
    }),
  );
  const routes = list(raw, "routes", "result").map((r, n) => parseRoute(r, `routes[${n}]`));
  return dropUndefined({
    cniVersion: version,
    interfaces: interfaces.length ? interfaces : undefined,
    ips: ips.length ? ips : undefined,
    routes: routes.length ? routes : undefined,
    dns,
  });
}

function dnsOut(d: DNS | undefined): DNS {
  if (!d) return {};
  return dropUndefined({
    nameservers: d.nameservers?.length ? d.nameservers : undefined,
    domain: d.domain || undefined,
    search: d.search?.length ? d.search : undefined,
    options: d.options?.length ? d.options : undefined,
  });
}

/**
 * Converts a current-form result into the JSON object of `version`, with libcni's key order and
 * omissions (empty lists omitted, `dns` always present).
 */
export function formatResult(r: Result, version: string): Record<string, unknown> {
  if (!SUPPORTED_VERSIONS.includes(version as (typeof SUPPORTED_VERSIONS)[number])) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `cannot convert result to unsupported version "${version}"`,
    );
  }
  if (compareVersions(version, "0.3.0") < 0) {
    let ip4: Record<string, unknown> | undefined;
    let ip6: Record<string, unknown> | undefined;
    for (const ip of r.ips ?? []) {
      const c = dropUndefined({ ip: ip.address, gateway: ip.gateway });
      if (familyOf(ip.address) === 4) ip4 ??= c;
      else ip6 ??= c;
      if (ip4 && ip6) break;
    }
    if (!ip4 && !ip6) throw new CniError(ErrorCode.Internal, "cannot convert: no valid IP addresses");
    for (const rt of r.routes ?? []) {
      const target = familyOf(rt.dst) === 4 ? ip4 : ip6;
      if (!target) continue;
      ((target.routes ??= []) as unknown[]).push(dropUndefined({ dst: rt.dst, gw: rt.gw }));
    }
    return dropUndefined({ cniVersion: version, ip4, ip6, dns: dnsOut(r.dns) });
  }
  const v11 = versionAtLeast(version, "1.1.0");
  const v10 = versionAtLeast(version, "1.0.0");
  const interfaces = r.interfaces?.map((i) =>
    dropUndefined({
      name: i.name,
      mac: i.mac || undefined,
      mtu: v11 && i.mtu ? i.mtu : undefined,
      sandbox: i.sandbox || undefined,
      socketPath: v11 && i.socketPath ? i.socketPath : undefined,
      pciID: v11 && i.pciID ? i.pciID : undefined,
    }),
  );
  const ips = r.ips?.map((ip) =>
    dropUndefined({
      version: v10 ? undefined : versionField(ip.address),
      interface: ip.interface,
      address: ip.address,
      gateway: ip.gateway || undefined,
    }),
  );
  const routes = r.routes?.map((rt) =>
    dropUndefined({
      dst: rt.dst,
      gw: rt.gw || undefined,
      mtu: v11 && rt.mtu ? rt.mtu : undefined,
      advmss: v11 && rt.advmss ? rt.advmss : undefined,
      priority: v11 && rt.priority ? rt.priority : undefined,
      table: v11 && rt.table !== undefined ? rt.table : undefined,
      scope: v11 && rt.scope !== undefined ? rt.scope : undefined,
    }),
  );
  return dropUndefined({
    cniVersion: version,
    interfaces: interfaces?.length ? interfaces : undefined,
    ips: ips?.length ? ips : undefined,
    routes: routes?.length ? routes : undefined,
    dns: dnsOut(r.dns),
  });
}

/** Where an ADD's addresses come from, for the message of `requireResultAddress`. */
export type AddressSource = "ipam" | "prevResult";

const ADDRESS_FIX: Record<AddressSource, string> = {
  ipam: "this config has no ipam.type: add an ipam section with a type (e.g. host-local)",
  prevResult: "the prevResult has none: chain this plugin after one that assigns an address",
};

/**
 * Refuses (code 7) an ADD whose result would carry no IP address when `cniVersion` is before
 * 0.3.0: such a result is `ip4`/`ip6` and cannot say "no address", so `formatResult` (like
 * libcni) fails on it, and finding that out after the plugin made its links leaves them behind
 * (upstream's macvlan, tap, host-device and bridge do). Called where ADD validates its config,
 * before the first change; `hasAddress` is whether the result will have one (in practice: an
 * `ipam.type`, or a prevResult with addresses).
 */
export function requireResultAddress(cniVersion: string, hasAddress: boolean, source: AddressSource): void {
  if (hasAddress || versionAtLeast(cniVersion, "0.3.0")) return;
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    `cniVersion ${cniVersion} results must carry an IP address and ${ADDRESS_FIX[source]} or use cniVersion 0.3.0 or later`,
  );
}

/** Converts a result (any version, JSON form) to another version's JSON form. */
export function convertResult(raw: unknown, toVersion: string): Record<string, unknown> {
  return formatResult(parseResult(raw), toVersion);
}

/** What VERSION prints, exactly (4-space JSON like upstream's skel). */
export function versionReply(versions: readonly string[] = SUPPORTED_VERSIONS): string {
  const current = [...versions].sort(compareVersions).at(-1) ?? CURRENT_VERSION;
  return JSON.stringify({ cniVersion: current, supportedVersions: versions }, null, 4) + "\n";
}
