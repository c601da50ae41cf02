/**
 * The sbr plugin (source-based routing), chained after the plugin that made the interface: each
 * of the interface's addresses gets a routing table and a rule sending traffic from that address to
 * it, so replies leave by the interface they came in on. Upstream's fields: `table` (only rules,
 * into that table), `gateways` (one IPv4 and one IPv6 gateway instead of prevResult's),
 * `addSourceHints`. See docs/sbr.md.
 */
import * as v from "valibot";
import { existsSync } from "node:fs";
import {
  CniError,
  ErrorCode,
  configError,
  definePlugin,
  ipString,
  netConf,
  requirePrevResult,
  withFlock,
  type CmdArgs,
  type IPConfig,
  type Result,
} from "../../../src/cni/index.js";
import { classifyMessage, systemRunner } from "../../../src/process/index.js";
import { ipBatch } from "../../../src/iproute2/ip.js";
import { checkNetns } from "../../../src/link/attach.js";
import { toolsStatus } from "../../../src/link/status.js";
import {
  planRoutes,
  planRulesOnly,
  rulesToDelete,
  tableNumber,
  type RouteShow,
  type RuleShow,
} from "./routing.js";

const schema = netConf({
  table: v.optional(
    v.pipe(v.number(), v.integer("must be an integer"), v.minValue(1), v.maxValue(0xffffffff)),
  ),
  gateways: v.optional(v.array(ipString)),
  addSourceHints: v.optional(v.boolean(), false),
});
export type SbrConf = v.InferOutput<typeof schema>;

function gatewaysOf(list: string[] | undefined): { v4?: string; v6?: string } {
  const out: { v4?: string; v6?: string } = {};
  if (!list?.length) return out;
  if (list.length > 2)
    throw configError("gateways list cannot contain more than 2 entries (one IPv4, one IPv6)");
  for (const gw of list) {
    const k = gw.includes(":") ? "v6" : "v4";
    if (out[k]) throw configError(`gateways list contains multiple IP${k} addresses: ${out[k]} and ${gw}`);
    out[k] = gw;
  }
  return out;
}

/** The addresses of prevResult on this interface (or on no interface), as upstream's getIPCfgs. */
function ipsFor(ifname: string, prev: Result): IPConfig[] {
  if (!prev.ips?.length)
    throw new CniError(ErrorCode.Internal, `No IP addresses supplied on interface: ${ifname}`);
  return prev.ips.filter((ip) => {
    if (ip.interface === undefined) return true;
    const intf = prev.interfaces?.[ip.interface];
    return !intf || intf.name === ifname;
  });
}

interface NsState {
  rules: RuleShow[];
  v4: RouteShow[];
  v6: RouteShow[];
  link?: { addr_info?: Array<{ local: string }> };
}

/** Rules of both families, main-table routes of both, and the interface: one process. */
async function readState(netns: string, ifname: string): Promise<NsState> {
  const script = [
    "ip -j rule show || exit 1",
    "ip -6 -j rule show || exit 1",
    "ip -4 -j route show table main || exit 1",
    "ip -6 -j route show table main || exit 1",
    'ip -j addr show dev "$1" 2>/dev/null || echo "[]"',
  ].join("\n");
  const res = await systemRunner.run({ argv: ["sh", "-c", script, "sh", ifname], netns });
  if (res.code !== 0)
    throw new CniError(ErrorCode.Internal, `reading rules and routes: ${res.stderr.trim()}`);
  const lines = res.stdout.split("\n").filter((l) => l.trim().startsWith("["));
  const parse = <T>(i: number): T[] => (JSON.parse(lines[i] ?? "[]") as T[]) ?? [];
  const onLink = (r: RouteShow): boolean => r.dev === ifname;
  return {
    rules: [...parse<RuleShow>(0), ...parse<RuleShow>(1)],
    v4: parse<RouteShow>(2).filter(onLink),
    v6: parse<RouteShow>(3).filter(onLink),
    ...(parse(4)[0] ? { link: parse<NsState["link"]>(4)[0] } : {}),
  };
}

/** Upstream locks the namespace file around its reads and writes; so do we (the same flock). */
function locked<T>(netns: string, fn: () => Promise<T>): Promise<T> {
  return withFlock(netns, fn);
}

async function cmdAdd(args: CmdArgs<SbrConf>): Promise<Result> {
  const c = args.config;
  const gateways = gatewaysOf(c.gateways);
  const prev = requirePrevResult(args);
  const ips = ipsFor(args.ifname, prev);
  checkNetns(args.netns);
  await locked(args.netns, async () => {
    let plan;
    if (c.table !== undefined) plan = planRulesOnly(ips, c.table);
    else {
      const state = await readState(args.netns, args.ifname);
      if (!state.link)
        throw new CniError(
          ErrorCode.Internal,
          `Cannot find network interface ${args.ifname}: Link not found`,
        );
      plan = planRoutes({
        ifname: args.ifname,
        ips,
        rules: state.rules,
        routes: { v4: state.v4, v6: state.v6 },
        gateways,
        addSourceHints: c.addSourceHints,
      });
    }
    try {
      if (plan.rules6.length) await ipBatch(plan.rules6, { netns: args.netns, family: 6 });
      await ipBatch(plan.commands, { netns: args.netns });
    } catch (e) {
      await ipBatch(plan.undo, { netns: args.netns, force: true }).catch(() => undefined);
      await ipBatch(plan.undo6, { netns: args.netns, force: true, family: 6 }).catch(() => undefined);
      throw new CniError(ErrorCode.Internal, (e as Error).message);
    }
  });
  return prev;
}

/** The rules whose source is an address of the interface; nothing to do when it or the namespace is gone. */
async function cmdDel(args: CmdArgs<SbrConf>): Promise<void> {
  gatewaysOf(args.config.gateways);
  if (!args.netns || !existsSync(args.netns)) return;
  checkNetns(args.netns);
  await locked(args.netns, async () => {
    const state = await readState(args.netns, args.ifname);
    if (!state.link) return;
    const addrs = (state.link.addr_info ?? []).map((a) => a.local);
    const errors = [];
    for (const family of [4, 6] as const) {
      const cmds = rulesToDelete(
        state.rules.filter((r) => (family === 6) === !!r.src?.includes(":")),
        addrs,
        args.config.table,
      );
      if (cmds.length)
        errors.push(...(await ipBatch(cmds, { netns: args.netns, force: true, family })).errors);
    }
    const bad = errors.filter((e) => classifyMessage(e.message) !== "not-found");
    if (bad.length)
      throw new CniError(ErrorCode.Internal, `Failed to delete rule ${bad.map((e) => e.message).join("; ")}`);
  });
}

/** Upstream's CHECK checks nothing; ours checks each address still has its rule. */
async function cmdCheck(args: CmdArgs<SbrConf>): Promise<void> {
  const prev = requirePrevResult(args);
  checkNetns(args.netns);
  const ips = ipsFor(args.ifname, prev);
  const state = await readState(args.netns, args.ifname);
  for (const ip of ips) {
    const addr = ip.address.split("/")[0]!;
    const rule = state.rules.find(
      (r) =>
        r.src === addr && (args.config.table === undefined || tableNumber(r.table) === args.config.table),
    );
    if (!rule) throw new CniError(ErrorCode.Internal, `no rule for source ${addr}`);
  }
}

export const plugin = definePlugin<SbrConf>(
  {
    add: cmdAdd,
    del: cmdDel,
    check: cmdCheck,
    status: () => Promise.resolve(toolsStatus(["ip"])),
  },
  { name: "sbr", config: schema, answersWithPrevResult: true },
);
