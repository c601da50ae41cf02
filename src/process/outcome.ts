/**
 * What both ways of starting a program (node:child_process in runner.ts, Bun.spawn in
 * bun-spawn.ts) share: the SIGKILL once the command's timeout has passed, and the Completed they
 * report (a program killed by a signal exits 128 + its number, as a shell reports it).
 */
import type { Completed } from "./runner.js";

export interface Deadline {
  /** Whether the timeout passed and the program was killed. */
  readonly timedOut: boolean;
  clear(): void;
}

/** Calls `kill` after `timeoutMs` (never without one) unless cleared first. */
export function killAfter(timeoutMs: number | undefined, kill: () => void): Deadline {
  let timedOut = false;
  const timer =
    timeoutMs !== undefined
      ? setTimeout(() => {
          timedOut = true;
          kill();
        }, timeoutMs)
      : undefined;
  return {
    get timedOut() {
      return timedOut;
    },
    clear: () => clearTimeout(timer),
  };
}

function signalNumber(signal: string | null): number {
  const signals = process.getBuiltinModule("node:os").constants.signals as Record<string, number>;
  return signal ? (signals[signal] ?? 0) : 0;
}

export function completed(
  stdout: string,
  stderr: string,
  code: number | null,
  signal: string | null,
  deadline: Deadline,
): Completed {
  return {
    stdout,
    stderr,
    code: code ?? 128 + signalNumber(signal),
    ...(signal ? { signal } : {}),
    ...(deadline.timedOut ? { timedOut: true } : {}),
  };
}
