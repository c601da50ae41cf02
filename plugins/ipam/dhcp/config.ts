/**
 * dhcp IPAM config, upstream's fields: ipam.daemonSocketPath, ipam.provide [{option, value,
 * fromArg}], ipam.request [{option, skipDefault}], ipam.priority (metric of the routes).
 * Options are upstream's names (dhcp-options(5) subset) or numbers 0-255.
 */
import * as v from "valibot";
import { configError, netConf } from "../../../src/cni/index.js";
import { Option } from "../../../src/dhcp/message.js";

export const DEFAULT_SOCKET = "/run/cni/dhcp.sock";

const OPTION_NAMES: Record<string, number> = {
  "dhcp-client-identifier": Option.ClientId,
  "subnet-mask": Option.SubnetMask,
  routers: Option.Router,
  "host-name": Option.HostName,
  "user-class": Option.UserClass,
  "vendor-class-identifier": Option.ClassId,
};
/** Requested unless a request entry says skipDefault (upstream's requestOptionsDefault). */
const DEFAULT_REQUESTED = [Option.Router, Option.SubnetMask];

const optionName = v.pipe(
  v.string(),
  v.check(
    (s) => s in OPTION_NAMES || (/^\d{1,3}$/.test(s) && Number(s) <= 255),
    "must be a DHCP option name (dhcp-client-identifier, subnet-mask, routers, host-name, user-class, vendor-class-identifier) or a number 0-255",
  ),
);

export const dhcpSchema = netConf({
  ipam: v.looseObject({
    type: v.string(),
    daemonSocketPath: v.optional(v.pipe(v.string(), v.startsWith("/", "must be an absolute path"))),
    provide: v.optional(
      v.array(
        v.looseObject({
          option: optionName,
          value: v.optional(v.pipe(v.string(), v.maxLength(255, "must be at most 255 bytes"))),
          fromArg: v.optional(v.string()),
        }),
      ),
    ),
    request: v.optional(
      v.array(
        v.looseObject({
          option: v.optional(v.union([v.literal(""), optionName])),
          skipDefault: v.optional(v.boolean()),
        }),
      ),
    ),
    priority: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  }),
});
export type DhcpConf = v.InferOutput<typeof dhcpSchema>;

export function optionCode(name: string): number {
  return OPTION_NAMES[name] ?? Number(name);
}

/**
 * The options a lease sends, code → hex value: provided values (config, then CNI_ARGS by
 * `fromArg`, the later winning as upstream's Options.Update), and the parameter request list.
 */
export function leaseOptions(conf: DhcpConf, cniArgs: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of conf.ipam.provide ?? []) {
    const code = optionCode(p.option);
    if (p.value) out[code] = Buffer.from(p.value).toString("hex");
    const fromArg = p.fromArg !== undefined ? cniArgs[p.fromArg] : undefined;
    if (fromArg !== undefined) {
      if (Buffer.byteLength(fromArg) > 255)
        throw configError(`value too long for option "${p.option}" from CNI_ARGS "${p.fromArg}"`);
      out[code] = Buffer.from(fromArg).toString("hex");
    }
  }
  const requested: number[] = [];
  let skipDefault = false;
  for (const r of conf.ipam.request ?? []) {
    if (r.skipDefault) skipDefault = true;
    if (r.option) requested.push(optionCode(r.option));
  }
  if (!skipDefault) requested.push(...DEFAULT_REQUESTED);
  const list = [...new Set(requested)];
  if (list.length) out[55] = Buffer.from(list).toString("hex");
  return out;
}

/** Upstream's client ID: "<container>/<network>/<ifname>", cut to 254 bytes, sent as type 0 + text. */
export function clientId(containerId: string, network: string, ifname: string): string {
  return `${containerId}/${network}/${ifname}`.slice(0, 254);
}
