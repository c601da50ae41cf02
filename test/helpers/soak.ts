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
import { join, resolve } from "node:path";
import { LOCK_FILE as PORTMAP_LOCK } from "../../plugins/meta/portmap/config.js";
import { LOCK_FILE as FIREWALL_LOCK } from "../../plugins/meta/firewall/firewall_iptables.js";
import { NFT_LOCK_FILE as FIREWALL_NFT_LOCK } from "../../plugins/meta/firewall/firewall_nftables.js";
import { NetnsPool, run, type Netns } from "./netns.js";
import { chainAdd, chainConfs, chainDel, pool, type Backend, type ChainStep } from "./chain.js";
import { cni } from "./cni.js";
import { hostState, recordDirs, stateDiff } from "./state.js";
import { CPU_TIMED, cpuMs, sample, type SoakSample } from "./soak-growth.js";

export interface SoakReport {
  addMs: number[];
  /** Per cycle: CPU time (user + system) of the chain ADD's plugin processes. */
  addCpuMs: number[];
  /** Per cycle, per plugin of the chain: CPU time of its ADD. */
  addCpuByPlugin: Record<string, number[]>;
  delMs: number[];
  delCpuMs: number[];
  /**
   * Per cycle, right after its ADD: VERSION of each plugin of the chain (the same process starts,
   * no host state): what the machine's load alone does to latency, to compare drift against.
   */
  refMs: number[];
  refCpuMs: number[];
  /** What could grow, every `sampleEvery` cycles (test/helpers/soak-growth.ts). */
  samples: SoakSample[];
  failures: string[];
  leftover: string;
  processes: string[];
  /** Files of ours under /run (lock files, the state directory) that appeared during the run. */
  runFiles: string[];
  /** Lock files under /run that appeared but no plugin of the chain makes (another build's). */
  otherRunFiles: string[];
  /** Open descriptors of this process after the warm-up and at the end. */
  fds: { before: number; after: number };
  /**
   * After the cycles (when `sideBySide` is given): chain ADDs on the soaked host and on a fresh
   * host, alternated in one pool at the same width, so both see the same load at the same time.
   */
  sideBySide?: { soakedMs: number[]; freshMs: number[]; soakedCpuMs: number[]; freshCpuMs: number[] };
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

/**
 * Plugin processes (ours: started from `bin`, an absolute path, so another build's daemon on the
 * same machine does not count) still running: none may outlive its call.
 */
function pluginProcesses(bin: string): string[] {
  const dir = `${resolve(bin)}/`;
  const out = execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" });
  return out.split("\n").filter((l) => l.trim().split(/\s+/)[1]?.startsWith(dir));
}

/**
 * Whether a new file under /run can be the chain's: its plugins' lock files and what they keep
 * directly in /run/cni-nft. Other builds on a shared machine make files there too (a component
 * that this build does not have): those are listed apart and do not fail the soak.
 */
const CHAIN_LOCKS = new Set([PORTMAP_LOCK, FIREWALL_LOCK, FIREWALL_NFT_LOCK]);
export function chainsFile(path: string): boolean {
  return CHAIN_LOCKS.has(path) || !path.endsWith(".lock");
}

interface Target {
  host: Netns;
  confs: ReturnType<typeof chainConfs>;
}

export async function soak(o: {
  backend: Backend;
  dataDir: string;
  cycles: number;
  width: number;
  bin: string;
  /** Sample what could grow every this many cycles (default: 50). */
  sampleEvery?: number;
  /**
   * Cycles per host of the side-by-side comparison run after the soak (default: none). A fresh
   * host is what the first cycles saw; alternating with it cancels the machine's load, which
   * moves first-against-last figures on a shared machine.
   */
  sideBySide?: number;
}): Promise<SoakReport> {
  const every = o.sampleEvery ?? 50;
  const failures: string[] = [];
  const samples: SoakSample[] = [];
  const nets = new NetnsPool();
  try {
    const target = async (name: string, subnet: string): Promise<Target> => ({
      host: await nets.create(name),
      confs: chainConfs({ name, backend: o.backend, dataDir: o.dataDir, subnet }),
    });
    const soaked = await target(`soak${o.backend.slice(0, 3)}`, "10.243.0.0/16");
    const { host, confs } = soaked;
    // Record directories of components that exist: another build on the machine may add one.
    const state = async (): Promise<string> =>
      (
        await hostState([host], [join(o.dataDir), ...recordDirs(host.path).filter((d) => existsSync(d))])
      ).replace(/^.*last_reserved_ip.*$/gm, "");
    const reference = async ({ host, confs }: Target): Promise<{ ms: number; cpu: number }> => {
      const t0 = process.hrtime.bigint();
      let cpu = 0;
      for (const conf of confs) {
        const r = await cni(
          host,
          String(conf["type"]),
          "VERSION",
          { cniVersion: "1.0.0" },
          { containerId: "", wrap: CPU_TIMED },
        );
        cpu += cpuMs(r.stderr);
      }
      return { ms: Number(process.hrtime.bigint() - t0) / 1e6, cpu };
    };
    interface Cycle {
      ms: number;
      cpu: Record<string, number>;
      delMs: number;
      delCpu: number;
      ref: { ms: number; cpu: number };
      failure?: string;
    }
    const cycle = async (i: number, on: Target = soaked, sampled = true): Promise<Cycle> => {
      const { host, confs } = on;
      const c = await nets.create(`s${i % 1000}`);
      try {
        const a = { containerId: `soak${i}`, netns: c.path, hostPort: 20000 + (i % o.width) };
        const t0 = process.hrtime.bigint();
        const r = await chainAdd(host, confs, a, { wrap: () => CPU_TIMED });
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        const cpu = Object.fromEntries(r.steps.map((s) => [s.plugin, cpuMs(s.result.stderr)]));
        const ref = await reference(on);
        const t1 = process.hrtime.bigint();
        const delSteps: ChainStep[] = [];
        const del = await chainDel(host, confs, a, r.result, { wrap: CPU_TIMED }, delSteps);
        const delMs = Number(process.hrtime.bigint() - t1) / 1e6;
        const delCpu = delSteps.reduce((sum, s) => sum + cpuMs(s.result.stderr), 0);
        const failure = r.failed
          ? `ADD ${r.failed.plugin}: ${r.failed.result.stdout.trim()}`
          : del.length
            ? `DEL ${del.map((d) => `${d.plugin}: ${d.result.stdout.trim()}`).join("; ")}`
            : undefined;
        const out: Cycle = { ms, cpu, delMs, delCpu, ref };
        return failure ? { ...out, failure } : out;
      } finally {
        await c.destroy();
        if (sampled && i >= 0 && i % every === 0) samples.push(await sample(i, host, o.dataDir));
      }
    };
    await cycle(-1);
    const baseline = await state();
    const files = new Set(runFiles());
    const fdsBefore = openFds();
    samples.push(await sample(-1, host, o.dataDir));
    const runs = await pool(o.cycles, o.width, (i) => cycle(i));
    const inHost = (await run(["ip", "netns", "pids", host.name])).stdout.split("\n").filter(Boolean);
    const leftover = stateDiff(baseline, await state());
    let sideBySide: SoakReport["sideBySide"];
    if (o.sideBySide) {
      const fresh = await target(`soakf${o.backend.slice(0, 3)}`, "10.244.0.0/16");
      await cycle(-1, fresh, false);
      const both = await pool(2 * o.sideBySide, o.width, (i) =>
        cycle(o.cycles + i, i % 2 ? fresh : soaked, false),
      );
      const of = (odd: number): Cycle[] => both.filter((_, i) => i % 2 === odd);
      const cpu = (r: Cycle): number => Object.values(r.cpu).reduce((a, b) => a + b, 0);
      failures.push(...both.flatMap((r) => (r.failure ? [`side by side: ${r.failure}`] : [])));
      sideBySide = {
        soakedMs: of(0).map((r) => r.ms),
        freshMs: of(1).map((r) => r.ms),
        soakedCpuMs: of(0).map(cpu),
        freshCpuMs: of(1).map(cpu),
      };
    }
    return {
      addMs: runs.map((r) => r.ms),
      addCpuMs: runs.map((r) => Object.values(r.cpu).reduce((a, b) => a + b, 0)),
      addCpuByPlugin: Object.fromEntries(
        confs.map((c) => String(c["type"])).map((p) => [p, runs.map((r) => r.cpu[p] ?? NaN)]),
      ),
      delMs: runs.map((r) => r.delMs),
      delCpuMs: runs.map((r) => r.delCpu),
      refMs: runs.map((r) => r.ref.ms),
      refCpuMs: runs.map((r) => r.ref.cpu),
      samples: [...samples, await sample(o.cycles, host, o.dataDir)].sort((a, b) => a.cycle - b.cycle),
      failures: [...runs.flatMap((r) => (r.failure ? [r.failure] : [])), ...failures],
      leftover,
      processes: [...pluginProcesses(o.bin), ...inHost.map((pid) => `pid ${pid} in the host namespace`)],
      runFiles: runFiles().filter((f) => !files.has(f) && chainsFile(f)),
      otherRunFiles: runFiles().filter((f) => !files.has(f) && !chainsFile(f)),
      fds: { before: fdsBefore, after: openFds() },
      ...(sideBySide ? { sideBySide } : {}),
    };
  } finally {
    await nets.destroyAll();
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}
