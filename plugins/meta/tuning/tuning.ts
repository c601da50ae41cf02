/**
 * The tuning plugin: changes the container interface and the container's net sysctls, chained
 * after the plugin that made the interface. Upstream's fields and behaviour: `sysctl` (only
 * `net.*` of the container's namespace; `IFNAME` in a key is the container interface; an
 * allowlist in /etc/cni/tuning/allowlist.conf when present), `mac` (also from CNI_ARGS `MAC`,
 * runtimeConfig `mac` and `args.cni.mac`), `mtu`, `promisc`, `allmulti`, `txQLen`, `dataDir`,
 * and `args.cni` overrides of each. The interface's original MAC, MTU, promisc, allmulti and
 * txqueuelen are saved, as upstream saves them, in `<dataDir>/<containerID>_<ifname>.json`
 * (default dataDir /run/cni/tuning) and restored on DEL, so either implementation restores what
 * the other changed. See docs/tuning.md.
 */
import * as v from "valibot";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { posix } from "node:path";
import {
  CniError,
  ErrorCode,
  definePlugin,
  netConf,
  stateDirString,
  type CmdArgs,
  type Result,
  requirePrevResult,
} from "../../../src/cni/index.js";
import { classifyMessage, systemRunner } from "../../../src/process/index.js";
import { parseMac, unicastMacProblem } from "../../../src/address/index.js";
import { ipBatch } from "../../../src/iproute2/ip.js";
import { validNetnsPath } from "../../../src/iproute2/veth.js";

export const DEFAULT_DATA_DIR = "/run/cni/tuning";
export const ALLOWLIST = "/etc/cni/tuning/allowlist.conf";

const intField = v.pipe(v.number(), v.integer());
/** The kernel keeps MTU and queue length as u32: anything larger (2^64, 1e30) is refused here. */
const u32Field = v.pipe(
  intField,
  v.minValue(0, "must be an integer from 0 to 4294967295"),
  v.maxValue(0xffffffff, "must be an integer from 0 to 4294967295"),
);
const cniArgs = v.looseObject({
  sysctl: v.optional(v.record(v.string(), v.string())),
  mac: v.optional(v.string()),
  promisc: v.optional(v.boolean()),
  mtu: v.optional(u32Field),
  allmulti: v.optional(v.boolean()),
  txQLen: v.optional(u32Field),
});

const schema = netConf({
  dataDir: v.optional(stateDirString, ""),
  sysctl: v.optional(v.nullable(v.record(v.string(), v.string()))),
  mac: v.optional(v.string(), ""),
  promisc: v.optional(v.boolean(), false),
  mtu: v.optional(u32Field, 0),
  txQLen: v.optional(u32Field),
  allmulti: v.optional(v.boolean()),
  runtimeConfig: v.optional(v.looseObject({ mac: v.optional(v.string()) })),
  args: v.optional(v.looseObject({ cni: v.optional(v.nullable(cniArgs)) })),
});
export type TuningNetConf = v.InferOutput<typeof schema>;

/** The settings after every source of them is applied, as upstream's parseConf. */
export interface Tuning {
  dataDir: string;
  sysctl: Array<[string, string]>;
  mac: string;
  promisc: boolean;
  mtu: number;
  allmulti?: boolean;
  txQLen?: number;
}

/** What is saved before a change and restored on DEL (upstream's configToRestore, same JSON). */
interface Saved {
  mac?: string;
  promisc?: boolean;
  mtu?: number;
  allmulti?: boolean;
  txQLen?: number;
}

/**
 * Upstream refuses a config whose `sysctl` object repeats a key; JSON.parse keeps the last one
 * silently, so the raw text is scanned for the top-level `sysctl` object's keys. The scanner
 * (jsonc-parser) is loaded only when the text can hold that key at all (spelt out, or escaped
 * with `\\u`): its module set-up costs a plugin start about a millisecond.
 */
export async function duplicateSysctlKey(raw: string): Promise<string | undefined> {
  if (!raw.includes("sysctl") && !raw.includes("\\u")) return undefined;
  const { visit } = await import("jsonc-parser");
  const seen = new Set<string>();
  let duplicate: string | undefined;
  visit(raw, {
    onObjectProperty(key, _offset, _length, _line, _column, path) {
      if (duplicate !== undefined) return;
      const where = path();
      if (where.length !== 1 || where[0] !== "sysctl") return;
      if (seen.has(key)) duplicate = key;
      seen.add(key);
    },
  });
  return duplicate;
}

function canonicalMac(mac: string): string {
  const canonical = parseMac(mac);
  const problem = unicastMacProblem(mac);
  if (canonical !== undefined && problem === undefined) return canonical;
  if (canonical !== undefined)
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `MAC address ${mac} ${problem}: give a unicast address such as 0a:58:0a:00:00:02`,
    );
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    `invalid args ${mac} for MAC addr: address ${mac}: invalid MAC address`,
  );
}

export function tuningOf(args: CmdArgs<TuningNetConf>): Tuning {
  const c = args.config;
  const sysctl = new Map(Object.entries(c.sysctl ?? {}));
  let mac = c.mac;
  if (args.args["MAC"]) mac = args.args["MAC"];
  if (c.runtimeConfig?.mac) mac = c.runtimeConfig.mac;
  const t: Tuning = {
    dataDir: c.dataDir || DEFAULT_DATA_DIR,
    sysctl: [],
    mac,
    promisc: c.promisc,
    mtu: c.mtu,
    ...(c.allmulti !== undefined ? { allmulti: c.allmulti } : {}),
    ...(c.txQLen !== undefined ? { txQLen: c.txQLen } : {}),
  };
  const a = c.args?.cni;
  if (a) {
    for (const [k, val] of Object.entries(a.sysctl ?? {})) sysctl.set(k, val);
    if (a.mac !== undefined) t.mac = a.mac;
    if (a.promisc !== undefined) t.promisc = a.promisc;
    if (a.mtu !== undefined) t.mtu = a.mtu;
    if (a.allmulti !== undefined) t.allmulti = a.allmulti;
    if (a.txQLen !== undefined) t.txQLen = a.txQLen;
  }
  t.sysctl = [...sysctl];
  return t;
}

/**
 * `net.ipv4.conf.IFNAME.rp_filter` → `/proc/sys/net/ipv4/conf/eth0/rp_filter`. The path is
 * normalised first, so `net/../kernel/…` is refused like every key outside `net`.
 */
export function sysctlFile(key: string, ifname: string): string {
  const rel = key.replace(/\./g, "/").replace("IFNAME", ifname);
  const file = posix.join("/proc/sys", rel);
  if (!file.startsWith("/proc/sys/net/") || /[\0\n]/.test(file))
    throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid net sysctl key: ${JSON.stringify(rel)}`);
  return file;
}

function checkAllowlist(t: Tuning): void {
  if (t.sysctl.length === 0 || !existsSync(ALLOWLIST)) return;
  const allow = readFileSync(ALLOWLIST, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  for (const [key] of t.sysctl) {
    const ok = allow.some((re) => {
      try {
        return new RegExp(re).test(key);
      } catch {
        throw new CniError(
          ErrorCode.InvalidNetworkConfig,
          `invalid sysctl allowlist entry ${JSON.stringify(re)}`,
        );
      }
    });
    if (!ok)
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `Sysctl ${key} is not allowed. Only the following sysctls are allowed: [${allow.join(" ")}]`,
      );
  }
}

interface LinkState {
  address: string;
  mtu: number;
  min_mtu?: number;
  max_mtu?: number;
  flags: string[];
  txqlen: number;
}

/**
 * One process in the container's namespace: write the sysctls (`write`), read others (`read`,
 * values separated by NUL), then show the link. Paths and values are positional parameters of a
 * fixed script, never part of it.
 */
async function inNetns(
  netns: string,
  ifname: string,
  write: Array<[string, string]>,
  read: string[] = [],
): Promise<{ link?: LinkState; values: string[]; linkError: string }> {
  const script = [
    "ifname=$1; nw=$2; shift 2",
    'while [ "$nw" -gt 0 ]; do printf "%s" "$2" > "$1" || exit 3; shift 2; nw=$((nw-1)); done',
    'for f; do cat "$f" || exit 4; printf "\\0"; done',
    'exec ip -j -d link show dev "$ifname"',
  ].join("\n");
  const argv = ["sh", "-c", script, "sh", ifname, String(write.length)];
  for (const [f, val] of write) argv.push(f, val);
  argv.push(...read);
  const r = await systemRunner.run({ argv, netns });
  const err = r.stderr.trim().replace(/^sh: \d+: /, "");
  if (r.code === 3) throw new CniError(ErrorCode.Internal, `writing sysctl: ${err}`);
  if (r.code === 4) throw new CniError(ErrorCode.Internal, `reading sysctl: ${err}`);
  const parts = r.stdout.split("\0");
  const values = parts.slice(0, read.length).map((s) => s.replace(/\n$/, ""));
  const json = parts[read.length] ?? "";
  if (r.code !== 0 || !json.trim().startsWith("[")) return { values, linkError: err || `exit ${r.code}` };
  const link = (JSON.parse(json) as LinkState[])[0];
  return link ? { link, values, linkError: "" } : { values, linkError: "no such link" };
}

function backupPath(dataDir: string, containerId: string, ifname: string): string {
  return posix.join(dataDir, `${containerId}_${ifname}.json`);
}

/** Go's json.MarshalIndent(x, "", " ") of configToRestore: fields in its order, one-space indent. */
function backupJson(s: Saved): string {
  const o: Record<string, unknown> = {};
  if (s.mac) o["mac"] = s.mac;
  if (s.promisc !== undefined) o["promisc"] = s.promisc;
  if (s.mtu) o["mtu"] = s.mtu;
  if (s.allmulti !== undefined) o["allmulti"] = s.allmulti;
  if (s.txQLen !== undefined) o["txQLen"] = s.txQLen;
  return JSON.stringify(o, null, 1);
}

function checkNetns(args: CmdArgs<TuningNetConf>): void {
  if (!validNetnsPath(args.netns))
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `CNI_NETNS ${JSON.stringify(args.netns)} is not a usable path`,
    );
}

async function cmdAdd(args: CmdArgs<TuningNetConf>): Promise<Result> {
  const dup = await duplicateSysctlKey(args.rawConfig);
  if (dup !== undefined)
    throw new CniError(ErrorCode.InvalidNetworkConfig, "duplicated sysctl keys are not allowed", dup);
  const t = tuningOf(args);
  checkAllowlist(t);
  const prev = requirePrevResult(args);
  checkNetns(args);
  const mac = t.mac ? canonicalMac(t.mac) : "";
  const writes = t.sysctl.map(([k, val]): [string, string] => [sysctlFile(k, args.ifname), val]);

  const changesLink =
    t.mac !== "" || t.mtu !== 0 || t.promisc || t.allmulti !== undefined || t.txQLen !== undefined;
  // Nothing to set (podman's tuning has no options): no process at all, as upstream does no work.
  if (writes.length === 0 && !changesLink) {
    if (!existsSync(args.netns))
      throw new CniError(ErrorCode.Internal, `failed to open netns "${args.netns}": no such file`);
    return prev;
  }
  const { link, linkError } = await inNetns(args.netns, args.ifname, writes);
  if (!changesLink) return prev;
  if (!link) throw new CniError(ErrorCode.Internal, `failed to get "${args.ifname}": ${linkError}`);

  // What the device refuses is refused before the backup is written and anything is set.
  if (
    t.mtu &&
    ((link.min_mtu !== undefined && t.mtu < link.min_mtu) || (link.max_mtu && t.mtu > link.max_mtu))
  )
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `mtu ${t.mtu} is outside what ${args.ifname} accepts (${link.min_mtu ?? 0} to ${link.max_mtu ?? "?"})`,
    );
  const saved: Saved = {};
  if (t.mac) saved.mac = link.address;
  if (t.promisc) saved.promisc = link.flags.includes("PROMISC");
  if (t.mtu) saved.mtu = link.mtu;
  if (t.allmulti !== undefined) saved.allmulti = link.flags.includes("ALLMULTI");
  if (t.txQLen !== undefined) saved.txQLen = link.txqlen;
  if (!existsSync(t.dataDir)) mkdirSync(t.dataDir, { recursive: true, mode: 0o600 }); // upstream's mode
  writeFileSync(backupPath(t.dataDir, args.containerId, args.ifname), backupJson(saved), { mode: 0o600 });

  const dev = `dev ${args.ifname}`;
  const cmds: string[] = [];
  if (mac) cmds.push(`link set ${dev} address ${mac}`);
  if (t.promisc) cmds.push(`link set ${dev} promisc on`);
  if (t.mtu) cmds.push(`link set ${dev} mtu ${t.mtu}`);
  if (t.allmulti !== undefined) cmds.push(`link set ${dev} allmulticast ${t.allmulti ? "on" : "off"}`);
  if (t.txQLen !== undefined) cmds.push(`link set ${dev} txqueuelen ${t.txQLen}`);
  try {
    await ipBatch(cmds, { netns: args.netns });
  } catch (e) {
    throw CniError.from(e);
  }
  const result = prev;
  if (t.mac)
    result.interfaces = result.interfaces?.map((i) => (i.name === args.ifname ? { ...i, mac: t.mac } : i));
  return result;
}

/** Restores what ADD saved, as upstream; the backup stays when restoring fails. */
async function cmdDel(args: CmdArgs<TuningNetConf>): Promise<void> {
  const t = tuningOf(args);
  const file = backupPath(t.dataDir, args.containerId, args.ifname);
  if (!existsSync(file)) return;
  let saved: Saved;
  try {
    saved = JSON.parse(readFileSync(file, "utf8")) as Saved;
  } catch {
    return; // as upstream: an unreadable backup is left alone
  }
  // Nothing to restore into when the namespace or the interface is gone: drop the backup (upstream
  // keeps it forever).
  if (!args.netns || !validNetnsPath(args.netns) || !existsSync(args.netns)) {
    rmSync(file, { force: true });
    return;
  }
  const dev = `dev ${args.ifname}`;
  const cmds: string[] = [];
  if (saved.mtu) cmds.push(`link set ${dev} mtu ${saved.mtu}`);
  if (saved.mac) cmds.push(`link set ${dev} address ${canonicalMac(saved.mac)}`);
  if (saved.promisc !== undefined) cmds.push(`link set ${dev} promisc ${saved.promisc ? "on" : "off"}`);
  if (saved.allmulti !== undefined)
    cmds.push(`link set ${dev} allmulticast ${saved.allmulti ? "on" : "off"}`);
  if (saved.txQLen !== undefined) cmds.push(`link set ${dev} txqueuelen ${saved.txQLen}`);
  const res = await ipBatch(cmds, { netns: args.netns, force: true }).catch((e: unknown) => {
    throw CniError.from(e);
  });
  const notFound = res.errors.some((e) => classifyMessage(e.message) === "not-found");
  if (res.errors.length && !notFound)
    throw new CniError(
      ErrorCode.Internal,
      res.errors.map((e) => `\`ip ${e.command}\`: ${e.message}`).join("; "),
    );
  rmSync(file, { force: true });
}

async function cmdCheck(args: CmdArgs<TuningNetConf>): Promise<void> {
  const dup = await duplicateSysctlKey(args.rawConfig);
  if (dup !== undefined)
    throw new CniError(ErrorCode.InvalidNetworkConfig, "duplicated sysctl keys are not allowed", dup);
  const t = tuningOf(args);
  requirePrevResult(args);
  checkNetns(args);
  const files = t.sysctl.map(([k]) => sysctlFile(k, args.ifname));
  const { link, values } = await inNetns(args.netns, args.ifname, [], files);
  // Multi-value sysctls read back tab-separated ("0\t1000" for "0 1000"): compare the fields
  // (upstream compares the text and so fails CHECK on them).
  const fields = (s: string | undefined): string => (s ?? "").trim().split(/\s+/).join(" ");
  t.sysctl.forEach(([, want], n) => {
    if (fields(values[n]) !== fields(want))
      throw new CniError(
        ErrorCode.Internal,
        `Error: Tuning configured value of ${files[n]} is ${want}, current value is ${values[n]}`,
      );
  });
  if (!link) throw new CniError(ErrorCode.Internal, `Cannot find container link ${args.ifname}`);
  const fail = (what: string, want: unknown, have: unknown): never => {
    throw new CniError(
      ErrorCode.Internal,
      `Error: Tuning configured ${what} of ${args.ifname} is ${String(want)}, current value is ${String(have)}`,
    );
  };
  if (t.mac && canonicalMac(t.mac) !== link.address.toLowerCase()) fail("Ethernet", t.mac, link.address);
  const promisc = link.flags.includes("PROMISC");
  if (t.promisc !== promisc) fail("promisc", t.promisc, promisc ? 1 : 0);
  if (t.mtu && t.mtu !== link.mtu) fail("MTU", t.mtu, link.mtu);
  const allmulti = link.flags.includes("ALLMULTI");
  if (t.allmulti !== undefined && t.allmulti !== allmulti) fail("all-multicast mode", t.allmulti, allmulti);
  if (t.txQLen !== undefined && t.txQLen !== link.txqlen)
    fail("Transmit Queue Length", t.txQLen, link.txqlen);
}

export const plugin = definePlugin<TuningNetConf>(
  { add: cmdAdd, del: cmdDel, check: cmdCheck },
  { name: "tuning", config: schema, knownArgs: ["MAC"], netns: "network", answersWithPrevResult: true },
);
