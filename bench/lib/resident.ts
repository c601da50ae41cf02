/**
 * A resident daemon (docs/resident.md) for a bench: started from the compiled binary beside the
 * bench's driver, so it shares the namespaces (net, mount, user), root, privileges and executable
 * of the plugin processes the driver starts: the only callers it serves. Its socket is in a
 * root-only temporary directory that only the calls given `env` use. `stop` drains it (SIGTERM)
 * and returns what it counted, so a bench can tell a daemon that served every call from one that
 * refused them (a refused call runs in-process: it would time the in-process path under the
 * resident label). Killed with the driver on SIGINT, SIGTERM, SIGHUP and exit.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

/** What the daemon said it did, from its log (the line it writes when it stops). */
export interface ResidentCounts {
  served: number;
  refused: number;
  skipped: number;
  /** Its `refused: <why>` lines, first few. */
  refusals: string[];
}

export interface BenchResident {
  pid: number;
  /** CPU time so far (user + system) of the daemon and the programs it started and waited for. */
  cpuMs(): number;
  /** What plugin calls need to use it (CNI_NFT_RESIDENT_SOCKET). */
  env: Record<string, string>;
  stop(): Promise<ResidentCounts>;
}

/** Reads a daemon log: the counts of its `stopping:` line and its refusals. */
export function residentCounts(log: string): ResidentCounts {
  const m = /stopping: (\d+) calls served, (\d+) refused, (\d+) skipped/.exec(log);
  const refusals = log
    .split("\n")
    .filter((l) => l.includes("refused: "))
    .slice(0, 5);
  return m
    ? { served: Number(m[1]), refused: Number(m[2]), skipped: Number(m[3]), refusals }
    : { served: NaN, refused: refusals.length, skipped: NaN, refusals };
}

const CLK_TCK = 100; // Linux's USER_HZ, what /proc/PID/stat counts in

/** user + system ms of a /proc/PID/stat: the process's own, and its waited-for children's. */
export function cpuMsOf(pid: number | "self"): { own: number; children: number } {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  const [ut, st, cut, cst] = [11, 12, 13, 14].map((i) => Number(f[i]) * (1000 / CLK_TCK));
  return { own: ut! + st!, children: cut! + cst! };
}

/** One line for a bench's output: how many calls the daemon served and refused. */
export function describeCounts(c: ResidentCounts): string {
  const why = c.refusals.length ? ` (first: ${c.refusals[0]!.replace(/^.*refused: /, "")})` : "";
  return `resident daemon: ${c.served} calls served, ${c.refused} refused${why}`;
}

const running = new Set<ChildProcess>();
let hooked = false;
function killOnExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = (): void => {
    for (const c of running) c.kill("SIGKILL");
  };
  process.once("exit", killAll);
  for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const)
    process.once(s, () => {
      killAll();
      // A bench's own handler (bench/lib/namespaces.ts) exits; without one, exit as the signal would.
      if (process.listenerCount(s) === 0) process.exit(128 + { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 }[s]);
    });
}

/** Starts `BIN/cni-nft resident` with its socket and log in a new directory under `parent`. */
export async function startBenchResident(bin: string, parent: string): Promise<BenchResident> {
  killOnExit();
  const dir = mkdtempSync(join(parent, "resident-"));
  const socket = join(dir, "plugins.sock");
  const logPath = join(dir, "daemon.log");
  const log = openSync(logPath, "a");
  const child = spawn(join(bin, "cni-nft"), ["resident", "--socket", socket], {
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  running.add(child);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const readLog = (): string => (existsSync(logPath) ? readFileSync(logPath, "utf8") : "");
  for (let i = 0; i < 300 && !readLog().includes("listening on"); i++)
    await new Promise((r) => setTimeout(r, 100));
  if (!readLog().includes("listening on")) {
    child.kill("SIGKILL");
    running.delete(child);
    throw new Error(`the resident daemon did not listen: ${readLog()}`);
  }
  return {
    pid: child.pid!,
    env: { CNI_NFT_RESIDENT_SOCKET: socket },
    cpuMs() {
      const c = cpuMsOf(child.pid!);
      return c.own + c.children;
    },
    async stop() {
      child.kill("SIGTERM");
      await exited;
      running.delete(child);
      const counts = residentCounts(readLog());
      rmSync(dir, { recursive: true, force: true });
      return counts;
    },
  };
}
