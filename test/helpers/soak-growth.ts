/**
 * What could grow across soak cycles and make a later ADD slower than an early one, sampled every
 * few cycles: the host namespace's ruleset (lines, the highest rule handle), links and the
 * highest ifindex, conntrack entries, the host namespace's records and our lock files under /run,
 * the files in host-local's data directory,
 * the kernel's network namespaces (the `net_namespace` slab counts the ones whose deferred
 * clean-up has not run yet, which `ip netns list` does not show), named namespaces, mounts,
 * processes, kernel slab memory; plus the load average, to tell the machine from our state.
 *
 * And the CPU time of a plugin call: {@link CPU_TIMED} runs it under bash, whose `times` prints
 * the user and system time of its waited children (the plugin and whatever it waited for) with
 * millisecond precision, on the last line of stderr.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Netns } from "./netns.js";
import { recordDirs } from "./state.js";

/**
 * argv prefix: run the command, then print its children's CPU time on stderr; keeps its exit code.
 * `--norc`: Node gives a child's stdin as a socket pair, and a non-interactive bash whose stdin is
 * a socket takes itself for rshd's and sources ~/.bashrc (root's here runs `pyenv init`, ~85 ms of
 * CPU that `times` counted as the plugin's).
 */
export const CPU_TIMED = ["bash", "--norc", "-c", '"$@"; rc=$?; times >&2; exit $rc', "cpu-timed"];

/** User + system CPU milliseconds a {@link CPU_TIMED} run printed last on stderr (NaN when absent). */
export function cpuMs(stderr: string): number {
  const last = stderr.trimEnd().split("\n").at(-1) ?? "";
  const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/.exec(last);
  if (!m) return NaN;
  return (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000;
}

/**
 * One plugin call as a runtime makes it (`env` with CNI_COMMAND etc., `conf` on stdin), timed:
 * wall milliseconds and the CPU of the plugin and what it waited for ({@link CPU_TIMED}).
 */
export async function timedPluginCall(
  host: Netns,
  plugin: string,
  conf: unknown,
  env: Record<string, string | undefined>,
): Promise<{ ms: number; cpu: number }> {
  const t0 = process.hrtime.bigint();
  const r = await host.run([...CPU_TIMED, plugin], { input: JSON.stringify(conf), env });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.code !== 0) throw new Error(`${plugin} ${env["CNI_COMMAND"] ?? ""}: ${r.stdout} ${r.stderr}`);
  return { ms, cpu: cpuMs(r.stderr) };
}

export interface SoakSample {
  cycle: number;
  load1: number;
  /** Network namespaces the kernel still holds (active objects of the net_namespace slab). */
  kernelNetns: number;
  namedNetns: number;
  hostLinks: number;
  maxIfindex: number;
  conntrack: number;
  rulesetLines: number;
  maxRuleHandle: number;
  /** Files and directories in the host namespace's record directories, and /run/cni-nft*.lock. */
  runFiles: number;
  dataDirFiles: number;
  mounts: number;
  processes: number;
  slabKb: number;
}

function countTree(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    n++;
    if (e.isDirectory()) n += countTree(join(dir, e.name));
  }
  return n;
}

function slabActive(cache: string): number {
  const line = readFileSync("/proc/slabinfo", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${cache} `));
  return Number(line?.split(/\s+/)[1] ?? NaN);
}

function meminfoKb(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(readFileSync("/proc/meminfo", "utf8"));
  return Number(m?.[1] ?? NaN);
}

export async function sample(cycle: number, host: Netns, dataDir: string): Promise<SoakSample> {
  const [ruleset, links, ct] = await Promise.all([
    host.sh(["nft", "-a", "list", "ruleset"]),
    host.sh(["ip", "-o", "link", "show"]),
    host.sh(["cat", "/proc/sys/net/netfilter/nf_conntrack_count"]).catch(() => "0"),
  ]);
  const handles = [...ruleset.matchAll(/# handle (\d+)/g)].map((m) => Number(m[1]));
  const ifindexes = links
    .split("\n")
    .filter(Boolean)
    .map((l) => Number(l.split(":")[0]));
  const runLocks = readdirSync("/run").filter((n) => n.startsWith("cni-nft") && n !== "cni-nft").length;
  return {
    cycle,
    load1: Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]),
    kernelNetns: slabActive("net_namespace"),
    namedNetns: existsSync("/var/run/netns") ? readdirSync("/var/run/netns").length : 0,
    hostLinks: ifindexes.length,
    maxIfindex: Math.max(...ifindexes),
    conntrack: Number(ct.trim()),
    rulesetLines: ruleset.split("\n").length,
    maxRuleHandle: Math.max(0, ...handles),
    runFiles: recordDirs(host.path).reduce((n, d) => n + countTree(d), 0) + runLocks,
    dataDirFiles: countTree(dataDir),
    mounts: readFileSync("/proc/self/mountinfo", "utf8").split("\n").length,
    processes: readdirSync("/proc").filter((n) => /^\d+$/.test(n)).length,
    slabKb: meminfoKb("Slab"),
  };
}
