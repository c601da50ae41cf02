/**
 * The one way the project starts programs. A run is data (argv, stdin, namespace, timeout), so a
 * fake can record it and a test can compare what would have run. Node has no setns: a network
 * namespace is entered with nsenter, one exec (nsenter execs the program, no extra process).
 * node:child_process is loaded on the first run, not at import: its stream machinery costs a
 * compiled plugin start about a millisecond, and many plugin calls start no program at all.
 */
import { bunSpawner, runWithBun } from "./bun-spawn.js";
import { ProcessError, exitFailure, spawnFailure } from "./errors.js";
import { callEnv } from "../cni/ambient.js";
import { completed, killAfter } from "./outcome.js";

export interface Command {
  argv: readonly string[];
  /** Written to the program's stdin, then closed (empty when absent). */
  stdin?: string;
  /**
   * Network namespace to run in: a path (`/run/netns/x`, `/proc/PID/ns/net`) or the name of one
   * under /run/netns. Default: the caller's.
   */
  netns?: string;
  /** Kill the program (SIGKILL) after this many milliseconds; default: no limit. */
  timeoutMs?: number;
  /** The whole environment of the program; default: this process's (the call's, in the daemon). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Open descriptors the program inherits as its fd 3, 4, ... (flock(1) locks fd 3). */
  passFds?: readonly number[];
}

export interface Completed {
  stdout: string;
  stderr: string;
  /** Exit status; 128 + signal number when a signal ended the program. */
  code: number;
  /** The signal that ended the program, if one did. */
  signal?: string;
  /** The runner killed the program because its timeout passed. */
  timedOut?: boolean;
}

/**
 * Starts programs. `run` resolves with how the program ended, whatever its exit status (many
 * callers read stderr of a failed run), and rejects with a ProcessError only when the program
 * could not be started at all.
 */
export interface Runner {
  run(cmd: Command): Promise<Completed>;
}

const NETNS_NAME = /^[A-Za-z0-9_.-]+$/;

/** The path of a namespace given as a path or as a name under /run/netns. */
export function netnsPath(netns: string): string {
  if (netns.includes("/")) return netns;
  if (!NETNS_NAME.test(netns) || netns === "." || netns === "..")
    throw new ProcessError("spawn", [], `invalid network namespace name ${JSON.stringify(netns)}`);
  return `/run/netns/${netns}`;
}

/** The name of a namespace under /run/netns (given as a name or its path), else undefined. */
export function netnsName(netns: string | undefined): string | undefined {
  if (netns === undefined || netns === "") return undefined;
  if (!netns.includes("/"))
    return NETNS_NAME.test(netns) && netns !== "." && netns !== ".." ? netns : undefined;
  const name = /^(?:\/var)?\/run\/netns\/([A-Za-z0-9_.-]+)$/.exec(netns)?.[1];
  return name === "." || name === ".." ? undefined : name;
}

/** The argv that runs `argv` inside `netns` (unchanged when none is given). */
export function argvInNetns(netns: string | undefined, argv: readonly string[]): string[] {
  return netns ? ["nsenter", `--net=${netnsPath(netns)}`, "--", ...argv] : [...argv];
}

/** Runs programs on this machine. */
export class SystemRunner implements Runner {
  run(cmd: Command): Promise<Completed> {
    const bun = bunSpawner();
    if (bun) {
      if (cmd.argv.length === 0) return Promise.reject(new ProcessError("spawn", [], "empty command"));
      const env = cmd.env ?? callEnv();
      return runWithBun(bun, env ? { ...cmd, env } : cmd, argvInNetns(cmd.netns, cmd.argv));
    }
    return new Promise((resolve, reject) => {
      if (cmd.argv.length === 0) throw new ProcessError("spawn", [], "empty command");
      const [file, ...args] = argvInNetns(cmd.netns, cmd.argv);
      const { spawn } = process.getBuiltinModule("node:child_process");
      const env = cmd.env ?? callEnv();
      const child = spawn(file!, args, {
        stdio: ["pipe", "pipe", "pipe", ...(cmd.passFds ?? [])],
        ...(env ? { env } : {}),
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const deadline = killAfter(cmd.timeoutMs, () => child.kill("SIGKILL"));
      child.stdout!.on("data", (b: Buffer) => out.push(b));
      child.stderr!.on("data", (b: Buffer) => err.push(b));
      child.on("error", (e: NodeJS.ErrnoException) => {
        deadline.clear();
        reject(spawnFailure(cmd.argv, e));
      });
      child.on("close", (code, signal) => {
        deadline.clear();
        const text = (bufs: Buffer[]): string => Buffer.concat(bufs).toString("utf8");
        resolve(completed(text(out), text(err), code, signal, deadline));
      });
      child.stdin!.on("error", () => undefined); // the program may exit before reading all input
      child.stdin!.end(cmd.stdin ?? "");
    });
  }
}

/** The runner every caller uses unless one is injected. */
export const systemRunner: Runner = new SystemRunner();

/**
 * Runs and fails unless the program exited 0: rejects with a ProcessError whose kind says why
 * (not-found, permission, exit with stderr, timeout, killed).
 */
export async function runChecked(runner: Runner, cmd: Command): Promise<Completed> {
  const done = await runner.run(cmd);
  const failure = exitFailure(cmd.argv, done);
  if (failure) throw failure;
  return done;
}
