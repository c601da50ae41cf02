/**
 * bench/chain.ts's measurements, made inside one flavour's host namespace by its driver
 * (bench/lib/chain-host.ts): one chain ADD and DEL timed (wall and CPU), VERSION calls, the
 * processes a chain starts, the peak memory of a bridge ADD, and the population of containers
 * already attached, filled through the same plugins.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { cpuMsOf, type BenchResident } from "./resident.js";
import { populationMember } from "./chain-flavours.js";
import { processesOf, runChain, runChainAsync, type Flavour } from "./chain-run.js";
import { dropRecords } from "../../test/helpers/netns.js";

/** What a measurement needs of its host: the namespace names' prefix, the store, the daemon. */
export interface HostContext {
  /** Every namespace the driver adds starts with it (unique per flavour in a run). */
  prefix: string;
  store: string;
  daemon?: BenchResident;
}

const sh = (argv: string[]): string => execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });

/** `ip -batch` of netns add/del lines: one process for many namespaces. */
function netnsBatch(verb: "add" | "del", names: readonly string[]): void {
  if (names.length === 0) return;
  spawnSync("ip", ["-force", "-batch", "-"], { input: names.map((n) => `netns ${verb} ${n}\n`).join("") });
}

/** Runs `fn` with a container namespace `${prefix}${tag}` that exists only meanwhile. */
function withNetns<T>(ctx: HostContext, tag: string, fn: (path: string) => T): T {
  const ns = `${ctx.prefix}${tag}`;
  sh(["ip", "netns", "add", ns]);
  try {
    return fn(`/var/run/netns/${ns}`);
  } finally {
    sh(["ip", "netns", "del", ns]);
  }
}

/** Throws when the flavour's chain does not work on this host (one ADD and DEL). */
export function probe(f: Flavour, ctx: HostContext): void {
  withNetns(ctx, "w", (path) => runChain(f, "DEL", "probe", path, runChain(f, "ADD", "probe", path)));
}

/**
 * CPU ms so far of every process a chain runs: the plugin processes (and what they start) are
 * this driver's waited-for children; a resident daemon's own time and its children's are added.
 */
function cpuMs(ctx: HostContext): number {
  return cpuMsOf("self").children + (ctx.daemon ? ctx.daemon.cpuMs() : 0);
}

export interface ChainTiming {
  add: number;
  del: number;
  addCpu: number;
  delCpu: number;
}

/** One ADD and its DEL of the chain's first `length` plugins, in a fresh container namespace. */
export function timeChain(f: Flavour, length: number, id: string, ctx: HostContext): ChainTiming {
  const sub: Flavour = { ...f, chain: f.chain.slice(0, length) };
  return withNetns(ctx, "c", (path) => {
    let c = cpuMs(ctx);
    let t = process.hrtime.bigint();
    const result = runChain(sub, "ADD", id, path);
    const add = Number(process.hrtime.bigint() - t) / 1e6;
    const addCpu = cpuMs(ctx) - c;
    c = cpuMs(ctx);
    t = process.hrtime.bigint();
    runChain(sub, "DEL", id, path, result);
    return { add, addCpu, del: Number(process.hrtime.bigint() - t) / 1e6, delCpu: cpuMs(ctx) - c };
  });
}

/** `samples` VERSION calls of the bridge plugin, ms each. */
export function versionMs(f: Flavour, samples: number): number[] {
  const xs: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t = process.hrtime.bigint();
    spawnSync(`${f.bin}/bridge`, [], {
      env: { ...f.env, PATH: process.env["PATH"], CNI_COMMAND: "VERSION" },
    });
    xs.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return xs;
}

/** Processes one chain ADD and its DEL start (distinct pids that exec'd, under strace -f). */
export function processes(f: Flavour, ctx: HostContext): { add?: number; del?: number } {
  if (spawnSync("strace", ["-V"]).status !== 0) return {};
  const tag = f.label.replace(/\W/g, "");
  const logs = { ADD: join(ctx.store, `strace-add-${tag}`), DEL: join(ctx.store, `strace-del-${tag}`) };
  for (const log of Object.values(logs)) rmSync(log, { force: true });
  const wrap = (log: string): string[] => ["strace", "-f", "-qq", "-A", "-e", "trace=execve", "-o", log];
  const daemon = ctx.daemon;
  // A resident daemon's children are not the driver's: strace follows it too, for each window.
  const traced = (log: string, fn: () => unknown): number => {
    const d = daemon
      ? spawn("strace", ["-f", "-qq", "-e", "trace=execve", "-p", String(daemon.pid), "-o", `${log}.daemon`])
      : undefined;
    if (d) spawnSync("sleep", ["0.5"]); // strace attaches
    try {
      fn();
    } finally {
      d?.kill("SIGINT");
      if (d) spawnSync("sleep", ["0.5"]);
    }
    const own = processesOf(readFileSync(log, "utf8"));
    return own + (d && existsSync(`${log}.daemon`) ? processesOf(readFileSync(`${log}.daemon`, "utf8")) : 0);
  };
  try {
    return withNetns(ctx, "s", (path) => {
      let result: unknown;
      const add = traced(logs.ADD, () => {
        result = runChain(f, "ADD", "strace", path, undefined, wrap(logs.ADD));
      });
      const del = traced(logs.DEL, () => runChain(f, "DEL", "strace", path, result, wrap(logs.DEL)));
      return { add, del };
    });
  } catch {
    return {};
  }
}

/** Peak RSS of one bridge ADD process, in MiB (GNU time). */
export function peakMemoryMiB(f: Flavour, ctx: HostContext): number | undefined {
  if (!existsSync("/usr/bin/time")) return undefined;
  return withNetns(ctx, "m", (path) => {
    const conf = f.chain[0]!;
    const env = {
      ...f.env,
      PATH: process.env["PATH"],
      CNI_CONTAINERID: "mem",
      CNI_NETNS: path,
      CNI_IFNAME: "eth0",
      CNI_PATH: f.bin,
    };
    const add = spawnSync("/usr/bin/time", ["-f", "MAXRSS %M", `${f.bin}/bridge`], {
      input: JSON.stringify(conf),
      env: { ...env, CNI_COMMAND: "ADD" },
      encoding: "utf8",
    });
    spawnSync(`${f.bin}/bridge`, [], { input: JSON.stringify(conf), env: { ...env, CNI_COMMAND: "DEL" } });
    const kb = /MAXRSS (\d+)/.exec(add.stderr)?.[1];
    return kb ? Number(kb) / 1024 : undefined;
  });
}

/** The resident daemon's resident set now, in MiB. */
export function daemonRssMiB(daemon: BenchResident): number {
  return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${daemon.pid}/status`, "utf8"))?.[1]) / 1024;
}

/** A container of the population: its namespace and what DEL needs. */
export interface Attached {
  ns: string;
  id: string;
  flavour: Flavour;
  result: unknown;
}

/**
 * IPv6 off in the population's container namespaces, before their ADD (the chains are IPv4 only;
 * the timed containers keep it). Otherwise every new port's DAD, MLD and router solicitations,
 * the host side's and the container's, are flooded to every port of a bridge of up to 1,000 and
 * taken in by each container's IPv6 stack: ~8-10 s of softirq CPU per 1,000 filled, and ~40-50
 * ms of it during each timed chain ADD+DEL with 1,000 attached, the same for every flavour,
 * which pulled ratios towards 1.00x (docs/performance.md, "How to reproduce"). One `ip -batch`
 * for all of them (a `sysctl` per namespace, forked by ip).
 */
function quietIpv6(names: readonly string[]): void {
  if (names.length === 0) return;
  const off = "net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1";
  spawnSync("ip", ["-force", "-batch", "-"], {
    input: names.map((n) => `netns exec ${n} sysctl -qw ${off}\n`).join(""),
  });
}

/** Runs `jobs` at most `parallel` at a time (each job one chain, run by a child process). */
async function pool<T>(jobs: Array<() => Promise<T>>, parallel: number): Promise<T[]> {
  const out: T[] = new Array<T>(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  return out;
}

/**
 * Attaches containers `attached.length` .. `to - 1` through the chain, `parallel` at a time;
 * `progress` is called with the number attached after each.
 */
export async function fill(
  f: Flavour,
  to: number,
  parallel: number,
  attached: Attached[],
  ctx: HostContext,
  progress?: (done: number) => void,
): Promise<void> {
  const from = attached.length;
  const names = Array.from({ length: Math.max(0, to - from) }, (_, k) => `${ctx.prefix}p${from + k}`);
  netnsBatch("add", names);
  quietIpv6(names);
  const jobs = names.map((ns, k) => async () => {
    const i = from + k;
    const flavour = populationMember(f, i);
    const id = `pop${i}`;
    const result = await runChainAsync(flavour, "ADD", id, `/var/run/netns/${ns}`);
    attached.push({ ns, id, flavour, result });
    progress?.(attached.length);
  });
  await pool(jobs, parallel);
}

/**
 * Lets go of the whole population without a DEL through the plugins: its namespaces are removed
 * with the plugins' records of each (bench/lib/namespaces.ts says why), and what the chains left
 * on the host (links, rules, sets) goes with the host namespace at the end of the run. Nothing of
 * an emptying is timed, and emptying through the plugins took as long as the fill
 * (docs/performance.md, "How to reproduce").
 */
export function release(attached: Attached[]): void {
  for (const a of attached) dropRecords(`/var/run/netns/${a.ns}`);
  netnsBatch(
    "del",
    attached.map((a) => a.ns),
  );
  attached.length = 0;
}
