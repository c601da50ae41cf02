/**
 * static IPAM, drop-in compatible with upstream's: addresses/routes/dns from the config; CNI_ARGS
 * IP= (comma-separated CIDRs) and GATEWAY=; args.cni.ips and runtimeConfig.ips (CIDRs) replace
 * the configured addresses.
 */
import * as v from "valibot";
import {
  configError,
  contains,
  definePlugin,
  dnsSchema,
  formatCIDR,
  formatIP,
  netConf,
  parseCIDR,
  parseIP,
  routeSchema,
  versionAtLeast,
  type IPConfig,
  type Result,
  type Route,
  requirePrevResult,
} from "../../../src/cni/index.js";

export const staticSchema = netConf({
  ipam: v.looseObject({
    type: v.string(),
    addresses: v.optional(v.array(v.looseObject({ address: v.string(), gateway: v.optional(v.string()) }))),
    routes: v.optional(v.array(routeSchema)),
    dns: v.optional(dnsSchema),
  }),
});
type StaticConf = v.InferOutput<typeof staticSchema>;

interface Address {
  str: string;
  gateway?: string;
}

function load(conf: StaticConf, cniArgs: Record<string, string>): { ips: IPConfig[]; routes: Route[] } {
  const ipam = conf.ipam;
  let addrs: Address[] = (ipam.addresses ?? []).map((a) => ({ str: a.address, gateway: a.gateway }));
  if (cniArgs.IP) {
    for (const item of cniArgs.IP.split(",")) {
      const s = item.trim();
      if (!parseCIDR(s)) throw configError(`invalid CIDR ${s}`);
      addrs.push({ str: s });
    }
  }
  if (cniArgs.GATEWAY) {
    for (const item of cniArgs.GATEWAY.split(",")) {
      const gw = parseIP(item.trim());
      if (!gw) throw configError(`invalid gateway address: ${item}`);
      for (const a of addrs) if (contains(parseCIDR(a.str)!, gw)) a.gateway = formatIP(gw);
    }
  }
  for (const list of [conf.args?.cni?.ips, conf.runtimeConfig?.ips]) {
    if (!list?.length) continue;
    addrs = list.map((s) => {
      if (!parseCIDR(s))
        throw configError(`an entry in the 'ips' field is NOT in CIDR notation, got: '${s}'`);
      return { str: s };
    });
  }
  let v4 = 0;
  let v6 = 0;
  const ips = addrs.map((a): IPConfig => {
    const c = parseCIDR(a.str);
    if (!c) throw configError(`invalid CIDR ${a.str}`);
    if (c.ip.family === 4) v4++;
    else v6++;
    const out: IPConfig = { address: formatCIDR(c) };
    if (a.gateway) {
      const gw = parseIP(a.gateway);
      if (!gw) throw configError(`invalid gateway address: ${a.gateway}`);
      if (gw.family !== c.ip.family)
        throw configError(`gateway ${a.gateway} of address ${a.str} is of the other IP family`);
      out.gateway = formatIP(gw);
    }
    return out;
  });
  if ((v4 > 1 || v6 > 1) && !versionAtLeast(conf.cniVersion, "0.3.0")) {
    throw configError(`CNI version ${conf.cniVersion} does not support more than 1 address per family`);
  }
  const routes = (ipam.routes ?? []).map((r): Route => {
    const out: Route = { ...r, dst: formatCIDR(parseCIDR(r.dst)!) };
    if (r.gw !== undefined) out.gw = formatIP(parseIP(r.gw)!);
    return out;
  });
  return { ips, routes };
}

export const plugin = definePlugin<StaticConf>(
  {
    add(args) {
      const { ips, routes } = load(args.config, args.args);
      const result: Result = { cniVersion: args.cniVersion, dns: args.config.ipam.dns ?? {} };
      if (ips.length) result.ips = ips;
      if (routes.length) result.routes = routes;
      return Promise.resolve(result);
    },
    del(args) {
      load(args.config, args.args);
      return Promise.resolve();
    },
    check(args) {
      requirePrevResult(args);
      load(args.config, args.args);
      return Promise.resolve();
    },
  },
  { name: "static", config: staticSchema, knownArgs: ["IP", "GATEWAY"] },
);
