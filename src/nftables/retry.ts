/**
 * nft gives up when a netlink dump it needs (its cache, a listing, a counter reset) is
 * interrupted by a concurrent change of the ruleset (the kernel flags the dump
 * NLM_F_DUMP_INTR, nft reports "Interrupted system call"); nft 1.0.6 does not retry. Nothing is
 * committed then: nft stops before sending its batch, and a batch is atomic anyway. So every nft
 * run is retried on that error, a bounded number of times, after a short random pause that lets
 * the concurrent writer finish.
 */
import type { ExecResult } from "./exec.js";

/** Attempts in all, the first included. Measured: one retry is almost always enough. */
export const INTERRUPTED_ATTEMPTS = 8;

export function isInterrupted(res: ExecResult): boolean {
  return res.code !== 0 && /Interrupted system call/.test(res.stderr);
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Before the `attempt`th retry (from 1): a random pause, longer each time, that lets a concurrent writer finish. */
export const retryPause = (attempt: number): Promise<void> => pause(Math.random() * 5 * attempt);

/** Runs `once` until it is not interrupted, at most `attempts` times; returns the last result. */
export async function retryInterrupted(
  once: () => Promise<ExecResult>,
  attempts = INTERRUPTED_ATTEMPTS,
): Promise<ExecResult> {
  let res = await once();
  for (let i = 1; i < attempts && isInterrupted(res); i++) {
    await retryPause(i);
    res = await once();
  }
  return res;
}
