/**
 * The bandwidth plugin: rate limits on a container's veth, chained after the plugin that made it.
 * Upstream's fields (`ingressRate`, `ingressBurst`, `egressRate`, `egressBurst` in bits per second
 * and bits; or `runtimeConfig.bandwidth`, the capability Kubernetes fills from pod annotations,
 * used when the config itself has none), upstream's tc layout (shaping.ts) and ifb name
 * (`bwp` + sha512(network + containerID)), and upstream v1.5's `shapedSubnets`/`unshapedSubnets`.
 * See docs/bandwidth.md for where it differs from upstream.
 */
import * as v from "valibot";
import { readFileSync } from "node:fs";
import {
  CniError,
  ErrorCode,
  cidrString,
  configError,
  definePlugin,
  netConf,
  requirePrevResult,
  type CmdArgs,
  type Result,
} from "../../../src/cni/index.js";
import { sha512Hex } from "../../../src/cni/attachment.js";
import { ipBatch, IpError } from "../../../src/iproute2/ip.js";
import { classifyMessage } from "../../../src/process/index.js";
import { showClasses, showQdiscs, tcBatch } from "../../../src/iproute2/tc.js";
import { validNetnsPath } from "../../../src/iproute2/veth.js";
import {
  expectedTbf,
  redirectCommands,
  shapingCommands,
  tickInUsec,
  SHAPED_CLASS,
  UNSHAPED_CLASS,
  type Limit,
  type Selection,
} from "./shaping.js";

const bits = v.optional(
  v.pipe(
    v.number(),
    v.integer("must be an integer"),
    v.minValue(0, "must not be negative"),
    v.maxValue(2 ** 53),
  ),
);
const entryFields = {
  ingressRate: bits,
  ingressBurst: bits,
  egressRate: bits,
  egressBurst: bits,
  unshapedSubnets: v.optional(v.array(cidrString)),
  shapedSubnets: v.optional(v.array(cidrString)),
};
const ENTRY_KEYS = Object.keys(entryFields);
const entrySchema = v.looseObject(entryFields);
type Entry = v.InferOutput<typeof entrySchema>;

const schema = netConf({
  ...entryFields,
  runtimeConfig: v.optional(v.looseObject({ bandwidth: v.optional(entrySchema) })),
});
export type BandwidthConf = v.InferOutput<typeof schema>;

/** The ifb device of a container on a network (upstream's name, so either side's DEL finds it). */
export function ifbName(network: string, containerId: string): string {
  return `bwp${sha512Hex(network + containerId)}`.slice(0, 15);
}
/** Our ifbs carry this alias, so GC can tell a network's own from the others' (the name is a hash). */
function ifbAlias(network: string, containerId: string): string {
  return `cni-nft-bandwidth:${network}:${containerId}`;
}

export interface Shaping {
  ingress?: Limit;
  egress?: Limit;
  selection: Selection;
  /** Where the limits were found, for error messages. */
  where: string;
}

function pairOf(e: Entry, dir: "ingress" | "egress", where: string): Limit | undefined {
  const rate = e[`${dir}Rate`] ?? 0;
  const burst = e[`${dir}Burst`] ?? 0;
  const field = (k: string): string => `${where}${dir}${k}`;
  if (burst === 0 && rate !== 0)
    throw configError(`${field("Burst")}: if rate is set, burst must also be set`);
  if (rate === 0 && burst !== 0)
    throw configError(`${field("Rate")}: if burst is set, rate must also be set`);
  if (burst / 8 >= 2 ** 32 - 1) throw configError(`${field("Burst")}: burst cannot be more than 4GB`);
  if (rate === 0) return undefined;
  // Below a byte the kernel's arithmetic divides by zero (upstream sends it anyway).
  if (rate < 8) throw configError(`${field("Rate")}: must be at least 8 bits per second`);
  if (burst < 8) throw configError(`${field("Burst")}: must be at least 8 bits`);
  return { rate, burst };
}

/** The limits in force: the config's own when it names any, else runtimeConfig's (upstream's rule). */
export function shapingOf(c: BandwidthConf): Shaping | undefined {
  const own = ENTRY_KEYS.some((k) => c[k as keyof Entry] !== undefined);
  const entry: Entry | undefined = own ? c : c.runtimeConfig?.bandwidth;
  if (!entry) return undefined;
  const where = own ? "" : "runtimeConfig.bandwidth.";
  const ingress = pairOf(entry, "ingress", where);
  const egress = pairOf(entry, "egress", where);
  const unshaped = entry.unshapedSubnets ?? [];
  const shaped = entry.shapedSubnets ?? [];
  if (unshaped.length && shaped.length)
    throw configError(
      `${where}unshapedSubnets and shapedSubnets cannot be both specified, one of them should be discarded`,
    );
  if (!ingress && !egress) return undefined;
  const exclude = unshaped.length > 0;
  return {
    ...(ingress ? { ingress } : {}),
    ...(egress ? { egress } : {}),
    selection: { subnets: exclude ? unshaped : shaped, exclude },
    where,
  };
}

interface HostLink {
  ifname: string;
  ifindex: number;
  mtu: number;
  address?: string;
  qdisc?: string;
  ifalias?: string;
}

function checkNetns(netns: string): void {
  if (!validNetnsPath(netns))
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `CNI_NETNS ${JSON.stringify(netns)} is not a usable path`,
    );
}

/** The host end of the container interface's veth, which the result must list (as upstream). */
async function hostInterface(args: CmdArgs<BandwidthConf>, result: Result): Promise<HostLink> {
  if (!result.interfaces?.length) throw new CniError(ErrorCode.Internal, "no interfaces provided");
  let peer: number | undefined;
  let why = "";
  try {
    const res = await ipBatch([`link show dev ${args.ifname}`], {
      netns: args.netns,
      json: true,
      details: true,
    });
    const l = (res.shows[0]?.[0] ?? {}) as { link_index?: number; linkinfo?: { info_kind?: string } };
    if (l.linkinfo?.info_kind === "veth") peer = l.link_index;
  } catch (e) {
    why = `: ${(e as Error).message}`;
  }
  if (!peer)
    throw new CniError(ErrorCode.Internal, `container interface ${args.ifname} has no veth peer${why}`);
  const links = ((await ipBatch(["link show"], { json: true })).shows[0] ?? []) as HostLink[];
  const link = links.find((l) => l.ifindex === peer);
  if (!link) throw new CniError(ErrorCode.Internal, `veth peer with index ${peer} is not in host ns`);
  if (!result.interfaces.some((i) => !i.sandbox && i.name === link.ifname))
    throw new CniError(ErrorCode.Internal, "no veth peer of container interface found in host ns");
  return link;
}

function internal(e: unknown): CniError {
  return CniError.from(e);
}

async function cmdAdd(args: CmdArgs<BandwidthConf>): Promise<Result> {
  const shaping = shapingOf(args.config);
  const prev = requirePrevResult(args);
  if (!shaping) return prev;
  checkNetns(args.netns);
  const host = await hostInterface(args, prev);
  const ifb = ifbName(args.config.name, args.containerId);
  // Refuse before the first change what the kernel would refuse halfway.
  if (host.qdisc && !["noqueue", "noop", "pfifo_fast", "fq_codel", "mq"].includes(host.qdisc))
    throw new CniError(ErrorCode.Internal, `host interface ${host.ifname} already has a ${host.qdisc} qdisc`);
  const result: Result = { ...prev, interfaces: [...(prev.interfaces ?? [])] };
  let madeIfb = false;
  try {
    const tc: string[] = [];
    if (shaping.ingress) tc.push(...shapingCommands(host.ifname, shaping.ingress, shaping.selection, "src"));
    if (shaping.egress) {
      // Upstream sets no queue on the ifb (its tbf queues); htb's leaf queues need one.
      const qlen = shaping.selection.subnets.length ? 1000 : 0;
      const res = await ipBatch(
        [
          `link add ${ifb} mtu ${host.mtu} txqueuelen ${qlen} type ifb`,
          `link set ${ifb} alias ${ifbAlias(args.config.name, args.containerId)}`,
          `link set ${ifb} up`,
          `link show ${ifb}`,
        ],
        { json: true },
      ).catch((e: unknown) => {
        if (e instanceof IpError && e.onlyExists)
          throw new CniError(ErrorCode.Internal, `adding link: ${ifb} exists`);
        throw e;
      });
      madeIfb = true;
      const shown = (res.shows.at(-1)?.[0] ?? {}) as { address?: string };
      result.interfaces!.push({ name: ifb, mac: shown.address ?? "" });
      tc.push(...redirectCommands(host.ifname, ifb));
      tc.push(...shapingCommands(ifb, shaping.egress, shaping.selection, "dst"));
    }
    await tcBatch(tc);
    return result;
  } catch (e) {
    await removeShaping(host.ifname, shaping.ingress !== undefined, shaping.egress !== undefined).catch(
      () => undefined,
    );
    if (madeIfb) await ipBatch([`link del ${ifb}`], { force: true }).catch(() => undefined);
    throw internal(e);
  }
}

/** Removes the root and ingress qdiscs this plugin puts on the host veth. */
async function removeShaping(dev: string, root: boolean, ingress: boolean): Promise<void> {
  const qdiscs = await showQdiscs(dev);
  const cmds: string[] = [];
  if (root && qdiscs.some((q) => q.root && q.handle === "1:" && (q.kind === "tbf" || q.kind === "htb")))
    cmds.push(`qdisc del dev ${dev} root`);
  if (ingress && qdiscs.some((q) => q.kind === "ingress")) cmds.push(`qdisc del dev ${dev} ingress`);
  await tcBatch(cmds, { force: true });
}

/**
 * Deletes the ifb (all upstream's DEL does) and, first, the qdiscs on the host veth when the veth
 * is still there: upstream leaves the mirred redirect pointing at the deleted ifb, which drops
 * everything the container sends until the veth goes too.
 */
async function cmdDel(args: CmdArgs<BandwidthConf>): Promise<void> {
  const shaping = shapingOf(args.config);
  const ifb = ifbName(args.config.name, args.containerId);
  const prev = args.prevResult;
  if (shaping && prev && args.netns && validNetnsPath(args.netns)) {
    const host = await hostInterface(args, prev).catch(() => undefined);
    if (host) await removeShaping(host.ifname, !!shaping.ingress, !!shaping.egress).catch(() => undefined);
  }
  const res = await ipBatch([`link del ${ifb}`], { force: true }).catch((e: unknown) => {
    throw internal(e);
  });
  const bad = res.errors.filter((e) => classifyMessage(e.message) !== "not-found");
  if (bad.length) throw new CniError(ErrorCode.Internal, bad.map((e) => e.message).join("; "));
}

let tick: number | undefined;
function ticks(): number {
  tick ??= tickInUsec(readFileSync("/proc/net/psched", "utf8"));
  return tick;
}

async function checkLimit(dev: string, limit: Limit, sel: Selection): Promise<void> {
  const qdiscs = (await showQdiscs(dev)).filter((q) => q.kind !== "pfifo_fast");
  if (qdiscs.length === 0) throw new CniError(ErrorCode.Internal, "Failed to find qdisc");
  const root = qdiscs.find((q) => q.root);
  const fail = (what: string): never => {
    throw new CniError(ErrorCode.Internal, `${what} doesn't match`);
  };
  if (sel.subnets.length) {
    if (root?.kind !== "htb") fail(`qdisc of ${dev}`);
    const dflt = sel.exclude ? SHAPED_CLASS : UNSHAPED_CLASS;
    if (parseInt(root!.options?.default ?? "", 16) !== parseInt(dflt, 16)) fail("Default class");
    const rate = (await showClasses(dev)).find((c) => c.handle === `1:${SHAPED_CLASS}`)?.rate ?? 0;
    // tc prints htb rates rounded to its units.
    if (Math.abs(rate - limit.rate) > limit.rate * 0.01) fail("Rate");
    return;
  }
  if (root?.kind !== "tbf") return; // as upstream: only a tbf is compared
  const want = expectedTbf(limit, ticks());
  if (root.options?.rate !== want.rate) fail("Rate");
  if (root.options?.limit !== want.limit) fail("Limit");
  if (parseInt(root.options?.burst_raw ?? "", 16) !== want.buffer) fail("Buffer");
}

async function cmdCheck(args: CmdArgs<BandwidthConf>): Promise<void> {
  const shaping = shapingOf(args.config);
  const prev = requirePrevResult(args);
  checkNetns(args.netns);
  const host = await hostInterface(args, prev);
  if (!shaping) return;
  try {
    if (shaping.ingress) await checkLimit(host.ifname, shaping.ingress, shaping.selection);
    if (shaping.egress) {
      const ifb = ifbName(args.config.name, args.containerId);
      const links = ((await ipBatch([`link show dev ${ifb}`], { json: true, force: true })).shows[0] ??
        []) as HostLink[];
      if (!links.length) throw new CniError(ErrorCode.Internal, `get ifb device: ${ifb} not found`);
      await checkLimit(ifb, shaping.egress, shaping.selection);
    }
  } catch (e) {
    throw internal(e);
  }
}

/** Deletes this network's ifbs (ours carry an alias naming network and container) not in use. */
async function cmdGc(
  args: CmdArgs<BandwidthConf> & { validAttachments: { containerId: string }[] },
): Promise<void> {
  const links = ((await ipBatch(["link show type ifb"], { json: true })).shows[0] ?? []) as HostLink[];
  const valid = new Set(args.validAttachments.map((a) => a.containerId));
  const prefix = `cni-nft-bandwidth:${args.config.name}:`;
  const stale = links.filter((l) => {
    if (!l.ifalias?.startsWith(prefix)) return false;
    const id = l.ifalias.slice(prefix.length);
    return !valid.has(id) && l.ifname === ifbName(args.config.name, id);
  });
  if (stale.length)
    await ipBatch(
      stale.map((l) => `link del ${l.ifname}`),
      { force: true },
    );
}

async function cmdStatus(): Promise<void> {
  const { onPath } = await import("../../../src/iptables/iptables.js");
  const missing = ["ip", "tc"].filter((t) => !onPath(t));
  if (missing.length)
    throw new CniError(
      ErrorCode.PluginNotAvailable,
      `plugin not available: ${missing.join(", ")} not found in PATH`,
    );
}

export const plugin = definePlugin<BandwidthConf>(
  { add: cmdAdd, del: cmdDel, check: cmdCheck, gc: cmdGc, status: cmdStatus },
  {
    name: "bandwidth",
    config: schema,
    netns: "network",
    answersWithPrevResult: true,
    versions: ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
  },
);
