/**
 * Routes of an IPAM result as `ip -batch` lines, shared by every plugin that configures an
 * interface from a result (bridge, ptp and later ones).
 *
 * `route prepend` on purpose: it asks for NLM_F_CREATE without NLM_F_EXCL, which is what
 * upstream's ConfigureIface asks for (netlink RouteAddEcmp). A container on several networks gets
 * a default route from each: IPv4 keeps every one (the newest first, so it is the one used), IPv6
 * merges them into one multipath route. `route add` (exclusive) fails the second network with
 * "File exists". An identical route (same destination, gateway and device) still fails.
 */
import { familyOf, isCIDR, isIP } from "../address/index.js";
import { IpError } from "./ip.js";

/** A route as a CNI result carries it (the fields `ip` is given). */
export interface RouteSpec {
  dst: string;
  gw?: string;
  mtu?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/** An address with an optional gateway: what a route without `gw` takes its gateway from. */
export interface GatewaySource {
  address: string;
  gateway?: string;
}

function refuse(what: string, value: unknown): never {
  throw new IpError(`invalid route ${what} ${JSON.stringify(value)}`, []);
}

function checkedUint(what: string, value: number | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 0 || value > max) refuse(what, value);
  return value;
}

/**
 * The gateway a route without `gw` uses, as upstream: the first gateway among the addresses of
 * the route's family.
 */
export function familyGateway(dst: string, ips: readonly GatewaySource[]): string | undefined {
  return ips.find((i) => familyOf(i.address) === familyOf(dst) && i.gateway)?.gateway;
}

/** One `route prepend` line; every value is checked, since routes come from an IPAM plugin. */
export function routeCommand(ifname: string, route: RouteSpec, ips: readonly GatewaySource[]): string {
  if (typeof route.dst !== "string" || !isCIDR(route.dst)) refuse("dst", route.dst);
  const gw = route.gw ?? familyGateway(route.dst, ips);
  if (gw !== undefined && (typeof gw !== "string" || !isIP(gw) || familyOf(gw) !== familyOf(route.dst)))
    refuse("gw", gw);
  const metric = checkedUint("priority", route.priority, 0xffffffff);
  const table = checkedUint("table", route.table, 0xffffffff);
  const scope = checkedUint("scope", route.scope, 255);
  const mtu = checkedUint("mtu", route.mtu, 0xffffffff);
  return [
    `route prepend ${route.dst}`,
    gw !== undefined ? ` via ${gw}` : "",
    ` dev ${ifname}`,
    metric !== undefined ? ` metric ${metric}` : "",
    table !== undefined ? ` table ${table}` : "",
    scope !== undefined ? ` scope ${scope}` : "",
    mtu ? ` mtu ${mtu}` : "",
  ].join("");
}

/** The route lines for `routes` on `ifname`, in order. */
export function routeCommands(
  ifname: string,
  routes: readonly RouteSpec[],
  ips: readonly GatewaySource[],
): string[] {
  return routes.map((r) => routeCommand(ifname, r, ips));
}
