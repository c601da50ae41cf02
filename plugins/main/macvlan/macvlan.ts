/**
 * The macvlan plugin: a macvlan link on a master interface, moved into the container, addressed
 * by IPAM (or, without ipam, only brought up). Upstream's fields: `master` (default: the interface
 * of the first default route, on the host or, with `linkInContainer`, in the container), `mode`
 * (bridge, private, vepa, passthru; default bridge), `mtu` (0 to the master's), `mac` (also CNI_ARGS
 * `MAC` and runtimeConfig `mac`), `bcqueuelen`, `linkInContainer`. See docs/macvlan.md.
 */
import * as v from "valibot";
import { optionalIfname } from "../../../src/link/config.js";
import {
  CniError,
  ErrorCode,
  configError,
  definePlugin,
  delegateIpam,
  netConf,
  requireResultAddress,
  type CmdArgs,
  type Result,
} from "../../../src/cni/index.js";
import {
  attachLink,
  createContainerLink,
  checkContainerLink,
  checkNetns,
  defaultRouteInterface,
  detachLinkAndAddress,
  lookupMaster,
  macArg,
} from "../../../src/link/attach.js";
import { ipamGcAndStatus } from "../../../src/link/status.js";

export const MODES = ["bridge", "private", "vepa", "passthru"] as const;

const schema = netConf({
  master: optionalIfname,
  mode: v.optional(v.picklist(["", ...MODES], `must be one of ${MODES.join(", ")}`), ""),
  mtu: v.optional(v.pipe(v.number(), v.integer("must be an integer")), 0),
  mac: v.optional(v.string(), ""),
  linkInContainer: v.optional(v.boolean(), false),
  bcqueuelen: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffffffff))),
  runtimeConfig: v.optional(v.looseObject({ mac: v.optional(v.string()) })),
});
export type MacvlanConf = v.InferOutput<typeof schema>;

interface Resolved {
  master: string;
  mode: (typeof MODES)[number];
  mtu: number;
  mac: string;
}

/** upstream's loadConf: master defaulted, MTU within the master's, MAC from its three sources. */
async function resolve(args: CmdArgs<MacvlanConf>): Promise<Resolved> {
  const c = args.config;
  checkNetns(args.netns);
  const where = c.linkInContainer ? args.netns : undefined;
  const master = c.master || (await defaultRouteInterface(where));
  let mac = c.mac;
  if (args.args["MAC"]) mac = args.args["MAC"];
  if (c.runtimeConfig?.mac) mac = c.runtimeConfig.mac;
  if (mac) mac = macArg(mac);
  if (c.mtu !== 0) {
    const m = await lookupMaster(master, where);
    if (c.mtu < 0 || c.mtu > m.mtu)
      throw configError(`invalid MTU ${c.mtu}, must be [0, master MTU(${m.mtu})]`);
  }
  return { master, mode: c.mode || "bridge", mtu: c.mtu, mac };
}

async function cmdAdd(args: CmdArgs<MacvlanConf>): Promise<Result> {
  const c = args.config;
  requireResultAddress(args.cniVersion, Boolean(c.ipam?.type), "ipam");
  const r = await resolve(args);
  const typeArgs = [
    "mode",
    r.mode,
    ...(c.bcqueuelen !== undefined ? ["bcqueuelen", String(c.bcqueuelen)] : []),
  ];
  const req = {
    kind: "macvlan" as const,
    typeArgs,
    master: r.master,
    masterInContainer: c.linkInContainer,
    mtu: r.mtu,
    mac: r.mac,
  };
  return attachLink(args, { create: () => createContainerLink(req, args.netns, args.ifname) });
}

async function cmdCheck(args: CmdArgs<MacvlanConf>): Promise<void> {
  const r = await resolve(args);
  if (args.config.ipam?.type) await delegateIpam(args);
  const prev = args.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, "required prevResult missing");
  await lookupMaster(r.master, args.config.linkInContainer ? args.netns : undefined);
  await checkContainerLink({
    netns: args.netns,
    ifname: args.ifname,
    prev,
    kind: "macvlan",
    data: { mode: r.mode },
  });
}

export const plugin = definePlugin<MacvlanConf>(
  {
    add: cmdAdd,
    del: detachLinkAndAddress,
    check: cmdCheck,
    ...ipamGcAndStatus(),
  },
  { name: "macvlan", config: schema, knownArgs: ["MAC"] },
);
