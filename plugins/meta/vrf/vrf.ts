/**
 * The vrf plugin, chained after the plugin that made the interface: puts the container interface
 * into a VRF device (made on first use, with the given routing table or the first one no VRF
 * uses), keeping its IPv6 addresses and moving its routes into the VRF's table; DEL takes the
 * interface out and deletes the VRF once no interface is left in it. Upstream's fields: `vrfname`
 * (required), `table`. See docs/vlan-ipvlan-dummy-vrf.md (not proven here: this machine's kernel
 * has no VRF support).
 */
import * as v from "valibot";
import { optionalIfname } from "../../../src/link/config.js";
import { existsSync } from "node:fs";
import {
  CniError,
  ErrorCode,
  configError,
  definePlugin,
  netConf,
  type CmdArgs,
  type Result,
} from "../../../src/cni/index.js";
import { ipBatch } from "../../../src/iproute2/ip.js";
import { checkNetns, isUnknownLinkType, missingKernelFeature } from "../../../src/link/attach.js";
import { toolsStatus } from "../../../src/link/status.js";

const schema = netConf({
  vrfname: optionalIfname,
  table: v.optional(
    v.pipe(v.number(), v.integer("must be an integer"), v.minValue(0), v.maxValue(0xffffffff)),
    0,
  ),
});
export type VrfConf = v.InferOutput<typeof schema>;

interface Link {
  ifname: string;
  ifindex: number;
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: { table?: number } };
  addr_info?: Array<{ family: string; local: string; prefixlen: number; scope?: string }>;
}
interface Route {
  dst: string;
  gateway?: string;
  dev?: string;
  scope?: string;
  protocol?: string;
  metric?: number;
}

function load(args: CmdArgs<VrfConf>): void {
  if (!args.config.vrfname) throw configError("configuration is expected to have a valid vrf name");
}

async function links(netns: string): Promise<Link[]> {
  return ((await ipBatch(["addr show"], { netns, json: true, details: true })).shows[0] ?? []) as Link[];
}

/** The first table from 1 no VRF of the namespace uses (upstream's findFreeRoutingTableID). */
export function freeTable(all: Link[]): number {
  const taken = new Set(
    all.filter((l) => l.linkinfo?.info_kind === "vrf").map((l) => l.linkinfo?.info_data?.table),
  );
  let t = 1;
  while (taken.has(t) || t === 253 || t === 254 || t === 255) t++;
  return t;
}

function routeWords(r: Route, family: 4 | 6): string {
  const dst = r.dst === "default" ? (family === 6 ? "::/0" : "0.0.0.0/0") : r.dst;
  return [
    dst,
    r.gateway ? `via ${r.gateway}` : "",
    r.dev ? `dev ${r.dev}` : "",
    r.metric !== undefined ? `metric ${r.metric}` : "",
  ]
    .filter(Boolean)
    .join(" ");
}

async function cmdAdd(args: CmdArgs<VrfConf>): Promise<Result> {
  load(args);
  const prev = args.prevResult;
  if (!prev) throw configError("missing prevResult from earlier plugin");
  checkNetns(args.netns);
  const { vrfname, table: wanted } = args.config;
  const all = await links(args.netns);
  const vrf = all.find((l) => l.ifname === vrfname);
  if (vrf && vrf.linkinfo?.info_kind !== "vrf")
    throw new CniError(ErrorCode.Internal, `cmdAdd failed: Netlink ${vrfname} is not a VRF`);
  const iface = all.find((l) => l.ifname === args.ifname);
  if (!iface)
    throw new CniError(ErrorCode.Internal, `cmdAdd failed: could not get link by name ${args.ifname}`);
  if (iface.master)
    throw new CniError(
      ErrorCode.Internal,
      `cmdAdd failed: interface ${args.ifname} has already a master set: ${iface.master}`,
    );
  let table = vrf?.linkinfo?.info_data?.table ?? 0;
  if (vrf && wanted !== 0 && table !== wanted)
    throw new CniError(
      ErrorCode.Internal,
      `cmdAdd failed: VRF ${vrfname} already exist with different routing table ${table}`,
    );
  let made = false;
  if (!vrf) {
    table = wanted || freeTable(all);
    try {
      await ipBatch([`link add ${vrfname} type vrf table ${table}`, `link set ${vrfname} up`], {
        netns: args.netns,
      });
      made = true;
    } catch (e) {
      const msg = (e as Error).message;
      if (isUnknownLinkType(msg)) throw missingKernelFeature("vrf", msg);
      throw new CniError(ErrorCode.Internal, `cmdAdd failed: could not add VRF ${vrfname}: ${msg}`);
    }
  }
  try {
    // Enslaving drops the interface's IPv6 addresses and its routes stay in the main table:
    // re-add the global IPv6 addresses, then the routes of universe scope into the VRF's table.
    const v6 = (iface.addr_info ?? []).filter((a) => a.family === "inet6" && a.scope === "global");
    const routes = await ipBatch(["route show table main"], { netns: args.netns, json: true });
    const routes6 = await ipBatch(["route show table main"], { netns: args.netns, json: true, family: 6 });
    const mine = (rs: unknown[] | undefined): Route[] =>
      ((rs ?? []) as Route[]).filter(
        (r) => r.dev === args.ifname && (r.scope === undefined || r.scope === "global"),
      );
    const cmds = [`link set dev ${args.ifname} master ${vrfname}`];
    for (const a of v6) cmds.push(`addr replace ${a.local}/${a.prefixlen} dev ${args.ifname} nodad`);
    for (const r of mine(routes.shows[0])) cmds.push(`route replace ${routeWords(r, 4)} table ${table}`);
    for (const r of mine(routes6.shows[0])) cmds.push(`route replace ${routeWords(r, 6)} table ${table}`);
    await ipBatch(cmds, { netns: args.netns });
  } catch (e) {
    await ipBatch([`link set dev ${args.ifname} nomaster`, ...(made ? [`link del ${vrfname}`] : [])], {
      netns: args.netns,
      force: true,
    }).catch(() => undefined);
    throw new CniError(ErrorCode.Internal, `cmdAdd failed: ${(e as Error).message}`);
  }
  return prev;
}

async function cmdDel(args: CmdArgs<VrfConf>): Promise<void> {
  load(args);
  if (!args.netns || !existsSync(args.netns)) return;
  checkNetns(args.netns);
  const all = await links(args.netns);
  const vrf = all.find((l) => l.ifname === args.config.vrfname && l.linkinfo?.info_kind === "vrf");
  if (!vrf) return;
  const cmds: string[] = [];
  if (all.some((l) => l.ifname === args.ifname)) cmds.push(`link set dev ${args.ifname} nomaster`);
  const others = all.filter((l) => l.master === vrf.ifname && l.ifname !== args.ifname);
  if (others.length === 0) cmds.push(`link del ${vrf.ifname}`);
  await ipBatch(cmds, { netns: args.netns }).catch((e: unknown) => {
    throw new CniError(ErrorCode.Internal, `cmdDel failed: ${(e as Error).message}`);
  });
}

async function cmdCheck(args: CmdArgs<VrfConf>): Promise<void> {
  load(args);
  if (!args.prevResult) throw configError("missing prevResult from earlier plugin");
  checkNetns(args.netns);
  const all = await links(args.netns);
  const vrf = all.find((l) => l.ifname === args.config.vrfname);
  if (!vrf) throw new CniError(ErrorCode.Internal, `Link not found: ${args.config.vrfname}`);
  if (!all.some((l) => l.ifname === args.ifname && l.master === vrf.ifname))
    throw new CniError(
      ErrorCode.Internal,
      `failed to find ${args.ifname} associated to vrf ${args.config.vrfname}`,
    );
}

export const plugin = definePlugin<VrfConf>(
  { add: cmdAdd, del: cmdDel, check: cmdCheck, status: () => Promise.resolve(toolsStatus(["ip"])) },
  {
    name: "vrf",
    config: schema,
    versions: ["0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    answersWithPrevResult: true,
  },
);
