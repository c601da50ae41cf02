/**
 * The tap plugin: a persistent tap device made in the container's namespace (for a VM runtime to
 * open), optionally a port of a bridge there, addressed by IPAM or only brought up. Upstream's
 * fields: `mtu`, `mac` (also CNI_ARGS `MAC`, runtimeConfig `mac`), `multiQueue`, `owner`, `group`,
 * `selinuxContext`, `bridge`. See docs/tap.md.
 */
import * as v from "valibot";
import {
  CniError,
  ErrorCode,
  configError,
  definePlugin,
  delegateIpam,
  netConf,
  requireResultAddress,
  validateIfname,
  type CmdArgs,
  type Result,
} from "../../../src/cni/index.js";
import { systemRunner } from "../../../src/process/index.js";
import { ipBatch } from "../../../src/iproute2/ip.js";
import {
  attachLink,
  checkContainerLink,
  checkNetns,
  detachLink,
  detachLinkAndAddress,
  macArg,
} from "../../../src/link/attach.js";
import { ipamGcAndStatus } from "../../../src/link/status.js";

const id = v.pipe(v.number(), v.integer("must be an integer"), v.minValue(0), v.maxValue(0xffffffff));
const schema = netConf({
  multiQueue: v.optional(v.boolean(), false),
  mtu: v.optional(v.pipe(v.number(), v.integer("must be an integer"), v.minValue(0)), 0),
  mac: v.optional(v.string(), ""),
  owner: v.optional(id),
  group: v.optional(id),
  selinuxContext: v.optional(
    v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.:,-]*$/, "must be an SELinux context")),
    "",
  ),
  bridge: v.optional(v.string(), ""),
  runtimeConfig: v.optional(v.looseObject({ mac: v.optional(v.string()) })),
});
export type TapConf = v.InferOutput<typeof schema>;

function macOf(args: CmdArgs<TapConf>): string {
  let mac = args.config.mac;
  if (args.args["MAC"]) mac = args.args["MAC"];
  if (args.config.runtimeConfig?.mac) mac = args.config.runtimeConfig.mac;
  return mac ? macArg(mac) : "";
}

async function createTap(args: CmdArgs<TapConf>, mac: string): Promise<void> {
  const c = args.config;
  const tuntap = ["ip", "tuntap", "add", "dev", args.ifname, "mode", "tap"];
  if (c.multiQueue) tuntap.push("multi_queue");
  if (c.owner !== undefined) tuntap.push("user", String(c.owner));
  if (c.group !== undefined) tuntap.push("group", String(c.group));
  // Upstream asks for a virtio-net header only on its netlink path (owner and group both set).
  if (c.owner !== undefined && c.group !== undefined && !c.selinuxContext) tuntap.push("vnet_hdr");
  // The device is labelled by the process that makes it: runcon starts ip in that context.
  const argv = c.selinuxContext ? ["runcon", c.selinuxContext, ...tuntap] : tuntap;
  const res = await systemRunner.run({ argv, netns: args.netns }).catch((e: unknown) => {
    throw new CniError(ErrorCode.Internal, `failed to create tap: ${(e as Error).message}`);
  });
  if (res.code !== 0) throw new CniError(ErrorCode.Internal, `failed to create tap: ${res.stderr.trim()}`);
  const set = [
    `link set dev ${args.ifname}`,
    ...(c.mtu ? [`mtu ${c.mtu}`] : []),
    ...(mac ? [`address ${mac}`] : []),
  ];
  const cmds = set.length > 1 ? [set.join(" ")] : [];
  if (c.bridge) cmds.push(`link set dev ${args.ifname} master ${c.bridge}`);
  if (cmds.length)
    await ipBatch(cmds, { netns: args.netns }).catch((e: unknown) => {
      const msg = (e as Error).message;
      if (c.bridge && msg.includes(`"${c.bridge}"`) && /Cannot find device|does not exist/.test(msg))
        throw new CniError(ErrorCode.Internal, `failed to get bridge ${c.bridge}: Link not found`);
      throw new CniError(ErrorCode.Internal, msg);
    });
}

async function cmdAdd(args: CmdArgs<TapConf>): Promise<Result> {
  const c = args.config;
  checkNetns(args.netns);
  requireResultAddress(args.cniVersion, Boolean(c.ipam?.type), "ipam");
  const mac = macOf(args);
  if (c.bridge) {
    try {
      validateIfname(c.bridge);
    } catch (e) {
      throw configError(`bridge: ${(e as Error).message}`);
    }
  }
  // Upstream's tap sets arp_notify only; ndisc_notify as well is harmless and announces IPv6.
  return attachLink(args, {
    create: () =>
      createTap(args, mac).catch(async (e: unknown) => {
        await detachLink(args.netns, args.ifname).catch(() => undefined);
        throw e;
      }),
  });
}

async function cmdDel(args: CmdArgs<TapConf>): Promise<void> {
  macOf(args);
  await detachLinkAndAddress(args);
}

async function cmdCheck(args: CmdArgs<TapConf>): Promise<void> {
  macOf(args);
  checkNetns(args.netns);
  if (args.config.ipam?.type) await delegateIpam(args);
  const prev = args.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, "Required prevResult missing");
  await checkContainerLink({ netns: args.netns, ifname: args.ifname, prev });
}

export const plugin = definePlugin<TapConf>(
  { add: cmdAdd, del: cmdDel, check: cmdCheck, ...ipamGcAndStatus() },
  { name: "tap", config: schema, knownArgs: ["MAC"] },
);
