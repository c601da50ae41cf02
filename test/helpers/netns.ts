/**
 * Throwaway network namespaces for integration tests. Every name carries this process's PID so
 * parallel test files never collide, and namespaces left by a crashed run (PID gone) are swept
 * before new ones are made. Nothing here touches the root namespace's links or rules.
 */
import { execFile } from "node:child_process";
import { readdirSync, existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileP = promisify(execFile);
export const NETNS_PREFIX = "cnt";
let counter = 0;
const RECORDS_ROOT = "/run/cni-nft/records";

/**
 * Removes the plugins' records (src/hoststate/records.ts) of the namespace at `path` before it
 * goes: a later namespace that gets the same inode would otherwise find them as its own.
 */
export function dropRecords(path: string): void {
  if (!existsSync(RECORDS_ROOT)) return;
  let ino: number;
  try {
    ino = statSync(path).ino;
  } catch {
    return;
  }
  for (const component of readdirSync(RECORDS_ROOT))
    rmSync(join(RECORDS_ROOT, component, `netns-${ino}`), { recursive: true, force: true });
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a command, resolving with its output and exit code (never rejects on non-zero exit). */
export async function run(
  argv: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<RunResult> {
  const { spawn } = await import("node:child_process");
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      env: opts.env ?? process.env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code: code ?? 1 });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

/** Like run, but throws with the command's stderr when it fails. */
export async function sh(argv: string[], input?: string): Promise<string> {
  const r = await run(argv, { input });
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Whether a process (or its zombie) with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Removes namespaces of earlier test runs whose process is gone. */
export async function sweepStaleNamespaces(): Promise<void> {
  if (!existsSync("/var/run/netns")) return;
  for (const name of readdirSync("/var/run/netns")) {
    const m = new RegExp(`^${NETNS_PREFIX}-(\\d+)-`).exec(name);
    if (m && !alive(Number(m[1]))) {
      dropRecords(`/var/run/netns/${name}`);
      await run(["ip", "netns", "del", name]);
    }
  }
}

export class Netns {
  private constructor(readonly name: string) {}

  get path(): string {
    return `/var/run/netns/${this.name}`;
  }

  /** Creates a namespace named `cnt-<pid>-<n>-<tag>` with lo up. */
  static async create(tag: string): Promise<Netns> {
    const name = `${NETNS_PREFIX}-${process.pid}-${++counter}-${tag}`.slice(0, 60);
    await execFileP("ip", ["netns", "add", name]);
    const ns = new Netns(name);
    await ns.sh(["ip", "link", "set", "lo", "up"]);
    return ns;
  }

  /** argv to run a command inside this namespace. */
  argv(cmd: string[]): string[] {
    return ["ip", "netns", "exec", this.name, ...cmd];
  }

  run(
    cmd: string[],
    opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
  ): Promise<RunResult> {
    return run(this.argv(cmd), opts);
  }

  sh(cmd: string[], input?: string): Promise<string> {
    return sh(this.argv(cmd), input);
  }

  async destroy(): Promise<void> {
    dropRecords(this.path);
    await run(["ip", "netns", "del", this.name]);
  }
}

/**
 * A set of namespaces that are all removed together; use one per test file:
 * `const nets = new NetnsPool(); after(() => nets.destroyAll());`
 */
export class NetnsPool {
  private readonly all: Netns[] = [];
  async create(tag: string): Promise<Netns> {
    const ns = await Netns.create(tag);
    this.all.push(ns);
    return ns;
  }
  async destroyAll(): Promise<void> {
    await Promise.all(this.all.splice(0).map((ns) => ns.destroy()));
  }
}

/** Links two namespaces with a veth pair (names ≤ 15 bytes) and returns the pair's names. */
export async function link(a: Netns, aIf: string, b: Netns, bIf: string): Promise<void> {
  const tmp = `t${process.pid % 100000}${++counter}`.slice(0, 12);
  await a.sh(["ip", "link", "add", aIf, "type", "veth", "peer", "name", tmp]);
  await a.sh(["ip", "link", "set", tmp, "netns", b.name]);
  await b.sh(["ip", "link", "set", tmp, "name", bIf]);
  await a.sh(["ip", "link", "set", aIf, "up"]);
  await b.sh(["ip", "link", "set", bIf, "up"]);
}

/**
 * argv prefix that runs a program under strace and SIGKILLs it at its k-th `syscall` (strace
 * counts per syscall and per process): the crash-safety tests' kill points.
 */
export function killedAt(syscall: string, k: number): string[] {
  return [
    "strace",
    "-f",
    "-qq",
    "-o",
    "/dev/null",
    "-e",
    `trace=${syscall}`,
    "-e",
    `inject=${syscall}:signal=SIGKILL:when=${k}`,
  ];
}

/** argv prefix that records every program a command starts (execve, children too) in `file`. */
export function tracingExecs(file: string): string[] {
  return ["strace", "-f", "-qq", "-e", "trace=execve", "-o", file];
}

/** The names of the programs a {@link tracingExecs} trace started, in order. */
export function programsStarted(file: string): string[] {
  const trace = readFileSync(file, "utf8");
  return [...trace.matchAll(/execve\("[^"]*\/([^"/]+)", .*\) = 0/g)].map((m) => m[1]!);
}
