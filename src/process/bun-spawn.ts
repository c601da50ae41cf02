/**
 * Under Bun (the compiled plugins), programs are started with Bun.spawn itself: node:child_process
 * is Bun's emulation over it, with Node's stream objects around every pipe, and costs a compiled
 * plugin about a millisecond more per program started (and its module set-up on the first one).
 * Same Command in, same Completed out, same failures as the node:child_process path.
 */
import { onBun } from "../ffi/bun.js";
import { spawnFailure } from "./errors.js";
import { completed, killAfter } from "./outcome.js";
import type { Command, Completed } from "./runner.js";

/** The subset of Bun.spawn the runner uses, typed here (tsc sees Node's types only). */
interface BunSubprocess {
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly exited: Promise<number>;
  readonly exitCode: number | null;
  readonly signalCode: string | null;
  kill(signal?: string): void;
}
interface BunSpawn {
  spawn(opts: {
    cmd: string[];
    stdio: Array<"pipe" | "ignore" | Uint8Array | number>;
    env?: Record<string, string>;
  }): BunSubprocess;
}

let started = 0;

/**
 * How many programs this process has started with Bun.spawn. Each keeps a descriptor (the memfd
 * of its stdin) until its subprocess object is garbage: the resident daemon collects garbage
 * after calls that started any (src/resident/daemon.ts).
 */
export function programsStarted(): number {
  return started;
}

/** Bun's spawn when running on Bun, else undefined (the caller takes node:child_process). */
export function bunSpawner(): BunSpawn | undefined {
  return onBun() ? ((globalThis as { Bun?: unknown }).Bun as BunSpawn) : undefined;
}

export async function runWithBun(bun: BunSpawn, cmd: Command, argv: readonly string[]): Promise<Completed> {
  const env = cmd.env
    ? Object.fromEntries(Object.entries(cmd.env).filter((e): e is [string, string] => e[1] !== undefined))
    : undefined;
  let child: BunSubprocess;
  try {
    child = bun.spawn({
      cmd: [...argv],
      stdio: [new TextEncoder().encode(cmd.stdin ?? ""), "pipe", "pipe", ...(cmd.passFds ?? [])],
      ...(env ? { env } : {}),
    });
  } catch (e) {
    throw spawnFailure(cmd.argv, e as NodeJS.ErrnoException);
  }
  started++;
  const deadline = killAfter(cmd.timeoutMs, () => child.kill("SIGKILL"));
  const [stdout, stderr] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]).finally(() => deadline.clear());
  return completed(stdout, stderr, child.exitCode, child.signalCode, deadline);
}
