/**
 * The ipvlan plugin: an ipvlan link on a master interface, in the container, addressed by IPAM or,
 * chained without ipam, with prevResult's addresses. Upstream's fields: `master` (default: the
 * default-route interface, or the single interface of prevResult when chained), `mode` (l2, l3,
 * l3s), `mtu`, `linkInContainer`. See docs/vlan-ipvlan-dummy-vrf.md (not proven here: this
 * machine's kernel has no ipvlan).
 */
import * as v from "valibot";
import { configError, definePlugin, netConf, type CmdArgs, type Result } from "../../../src/cni/index.js";
import {
  attachLink,
  checkLinkAndAddress,
  checkNetns,
  createContainerLink,
  defaultRouteInterface,
  detachLinkAndAddress,
  lookupMaster,
} from "../../../src/link/attach.js";
import { ipamGcAndStatus } from "../../../src/link/status.js";
import { optionalIfname } from "../../../src/link/config.js";

export const MODES = ["l2", "l3", "l3s"] as const;
const schema = netConf({
  master: optionalIfname,
  mode: v.optional(v.picklist(["", ...MODES], `must be one of ${MODES.join(", ")}`), ""),
  mtu: v.optional(v.pipe(v.number(), v.integer("must be an integer"), v.minValue(0)), 0),
  linkInContainer: v.optional(v.boolean(), false),
});
export type IpvlanConf = v.InferOutput<typeof schema>;

/** upstream's loadConf: the master from the config, prevResult's single interface, or the default route. */
async function masterOf(args: CmdArgs<IpvlanConf>): Promise<string> {
  const c = args.config;
  if (c.master) return c.master;
  const prev = args.prevResult;
  if (!prev) return defaultRouteInterface(c.linkInContainer ? args.netns : undefined);
  const only = prev.interfaces?.length === 1 ? prev.interfaces[0]!.name : "";
  if (!only) throw configError("chained master failure. PrevResult lacks a single named interface");
  return only;
}

async function cmdAdd(args: CmdArgs<IpvlanConf>): Promise<Result> {
  checkNetns(args.netns);
  const c = args.config;
  const master = await masterOf(args);
  const fromPrev = !c.ipam?.type && args.prevResult?.ips?.length ? args.prevResult : undefined;
  if (!fromPrev && !c.ipam?.type) throw configError("missing ipam.type (and no prevResult with addresses)");
  const req = {
    kind: "ipvlan" as const,
    typeArgs: ["mode", c.mode || "l2"],
    master,
    masterInContainer: c.linkInContainer,
    mtu: c.mtu,
  };
  return attachLink(args, {
    create: () => createContainerLink(req, args.netns, args.ifname),
    ...(fromPrev ? { addresses: fromPrev } : {}),
  });
}

async function cmdCheck(args: CmdArgs<IpvlanConf>): Promise<void> {
  if (args.config.master)
    await lookupMaster(args.config.master, args.config.linkInContainer ? args.netns : undefined);
  const mode = args.config.mode || "l2";
  await checkLinkAndAddress(args, "ipvlan", { mode });
}

export const plugin = definePlugin<IpvlanConf>(
  { add: cmdAdd, del: detachLinkAndAddress, check: cmdCheck, ...ipamGcAndStatus() },
  { name: "ipvlan", config: schema },
);
