/**
 * The soak: `cycles` ADD/DEL cycles of the whole chain, `width` at a time, in one host; each cycle
 * a fresh container namespace. Returns every ADD's latency and what was left: host state against
 * the state after a warm-up cycle (links, addresses, routes, rules, set and map elements, IP
 * reservations, the host namespace's per-attachment records), the plugins' lock files and
 * state files directly under /run (not other namespaces' records: other tests write those), processes still running (plugins, or anything in the host namespace) and the open file
 * descriptors of this process. The chain starts no daemon (dhcp is not in it).
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { NetnsPool, run, type Netns } from "./netns.js";
import { chainAdd, chainConfs, chainDel, pool, type Backend } from "./chain.js";
import { cni } from "./cni.js";
import { hostState, recordDirs, stateDiff } from "./state.js";

export interface SoakReport {
  addMs: number[];
  /**
   * Per cycle, right after its ADD: VERSION of each plugin of the chain (the same process starts,
   * no host state): what the machine's load alone does to latency, to compare drift against.
   */
  refMs: number[];
  failures: string[];
  leftover: string;
  processes: string[];
  /** Files of ours under /run (lock files, the state directory) that appeared during the run. */
  runFiles: string[];
  /** Open descriptors of this process after the warm-up and at the end. */
  fds: { before: number; after: number };
}

/**
 * Lock files of ours under /run and the files directly in /run/cni-nft (their names never
 * depend on a container; per-namespace records are in the compared state instead).
 */
function runFiles(): string[] {
  const out: string[] = [];
  for (const name of readdirSync("/run"))
    if (name.startsWith("cni-nft")) {
      const path = join("/run", name);
      out.push(path);
      if (name === "cni-nft" && existsSync(path))
        for (const inner of readdirSync(path, { withFileTypes: true }))
          if (!inner.isDirectory()) out.push(join(path, inner.name));
    }
  return out.sort();
}

function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

/** Plugin processes (ours) still running: none may outlive its call. */
function pluginProcesses(bin: string): string[] {
  const out = execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" });
  return out.split("\n").filter((l) => l.includes(bin) && !l.includes("ps -eo"));
}

export async function soak(o: {
  backend: Backend;
  dataDir: string;
  cycles: number;
  width: number;
  bin: string;
}): Promise<SoakReport> {
  const nets = new NetnsPool();
  try {
    const host: Netns = await nets.create(`soak${o.backend.slice(0, 3)}`);
    const confs = chainConfs({
      name: `soak${o.backend.slice(0, 3)}`,
      backend: o.backend,
      dataDir: o.dataDir,
      subnet: "10.243.0.0/16",
    });
    const state = async (): Promise<string> =>
      (await hostState([host], [join(o.dataDir), ...recordDirs(host.path)])).replace(
        /^.*last_reserved_ip.*$/gm,
        "",
      );
    const reference = async (): Promise<number> => {
      const t0 = process.hrtime.bigint();
      for (const conf of confs)
        await cni(host, String(conf["type"]), "VERSION", { cniVersion: "1.0.0" }, { containerId: "" });
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const cycle = async (i: number): Promise<{ ms: number; ref: number; failure?: string }> => {
      const c = await nets.create(`s${i % 1000}`);
      try {
        const a = { containerId: `soak${i}`, netns: c.path, hostPort: 20000 + (i % o.width) };
        const t0 = process.hrtime.bigint();
        const r = await chainAdd(host, confs, a);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const ref = await reference();
        const del = await chainDel(host, confs, a, r.result);
        const failure = r.failed
          ? `ADD ${r.failed.plugin}: ${r.failed.result.stdout.trim()}`
          : del.length
            ? `DEL ${del.map((d) => `${d.plugin}: ${d.result.stdout.trim()}`).join("; ")}`
            : undefined;
        return failure ? { ms, ref, failure } : { ms, ref };
      } finally {
        await c.destroy();
      }
    };
    await cycle(-1);
    const baseline = await state();
    const files = new Set(runFiles());
    const fdsBefore = openFds();
    const runs = await pool(o.cycles, o.width, cycle);
    const inHost = (await run(["ip", "netns", "pids", host.name])).stdout.split("\n").filter(Boolean);
    return {
      addMs: runs.map((r) => r.ms),
      refMs: runs.map((r) => r.ref),
      failures: runs.flatMap((r) => (r.failure ? [r.failure] : [])),
      leftover: stateDiff(baseline, await state()),
      processes: [...pluginProcesses(o.bin), ...inHost.map((pid) => `pid ${pid} in the host namespace`)],
      runFiles: runFiles().filter((f) => !files.has(f)),
      fds: { before: fdsBefore, after: openFds() },
    };
  } finally {
    await nets.destroyAll();
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}
