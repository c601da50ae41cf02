/**
 * flock(2) for Node without native addons: open the lock file, hand the descriptor to util-linux's
 * `flock <fd>` as an inherited fd; it calls flock(fd, LOCK_EX) on the *shared open file
 * description* and exits once the lock is granted. The lock then belongs to our still-open
 * description and lasts until we close it (or the process dies). This is the same lock upstream's
 * Go plugins take (flock on the same file), so both exclude each other.
 */
import { CniError, ErrorCode } from "./errors.js";
import { LOCK_EX, LOCK_NB, loadLibc } from "../ffi/libc.js";

export interface FileLock {
  release(): Promise<void>;
}

/** Takes an exclusive flock on `path` (created with `mode` when missing), waiting for it. */
export async function flockExclusive(path: string, timeoutMs = 60_000, mode = 0o600): Promise<FileLock> {
  const { openSync, closeSync, constants } = await import("node:fs");
  const fd = openSync(path, constants.O_RDONLY | constants.O_CREAT, mode);
  try {
    if (!(await bunFlock(fd, path, timeoutMs))) await flockProcess(fd, path, timeoutMs);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  let released = false;
  return {
    release() {
      if (!released) {
        released = true;
        closeSync(fd);
      }
      return Promise.resolve();
    },
  };
}

/**
 * Under Bun (the compiled plugins), flock(2) straight from libc: no process per lock. Polls with
 * LOCK_NB so the timeout holds and the event loop is never blocked. Returns false where libc is
 * not reachable (Node), so the caller falls back to flock(1).
 *
 * The poll interval doubles from 1 ms up to POLL_CAP_MS only: a poller gets the lock only if it is
 * free at that instant, so with a long interval the pollers that just missed a release sleep while
 * others take it again, and the unlucky one waits seconds (4 processes taking one lock for 20 ms:
 * longest wait 1.3 s with a 50 ms cap, 0.23 s with 5 ms; docs/performance.md).
 */
const POLL_CAP_MS = 5;

async function bunFlock(fd: number, path: string, timeoutMs: number): Promise<boolean> {
  const libc = await loadLibc();
  if (!libc) return false;
  const deadline = Date.now() + timeoutMs;
  for (let wait = 1; !libc.flock(fd, LOCK_EX | LOCK_NB); wait = Math.min(wait * 2, POLL_CAP_MS)) {
    if (Date.now() > deadline)
      throw new CniError(ErrorCode.TryAgainLater, `cannot lock ${path}`, "timed out");
    await new Promise((r) => setTimeout(r, wait));
  }
  return true;
}

/** flock(1) from util-linux takes the lock on our inherited descriptor and exits. */
async function flockProcess(fd: number, path: string, timeoutMs: number): Promise<void> {
  const { systemRunner } = await import("../process/runner.js");
  const argv = ["flock", "--exclusive", "--timeout", String(timeoutMs / 1000), "3"];
  const done = await systemRunner.run({ argv, passFds: [fd] }).catch((e: Error) => {
    throw new CniError(ErrorCode.IOFailure, `cannot lock ${path}: running flock(1) failed`, e.message, {
      cause: e,
    });
  });
  if (done.code !== 0)
    throw new CniError(
      ErrorCode.TryAgainLater,
      `cannot lock ${path}`,
      done.stderr.trim() || `flock exit ${done.code}`,
    );
}

/** Runs `fn` holding an exclusive flock on `path`. */
export async function withFlock<T>(path: string, fn: () => Promise<T> | T, mode = 0o600): Promise<T> {
  const lock = await flockExclusive(path, 60_000, mode);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
