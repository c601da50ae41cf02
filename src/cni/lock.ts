/**
 * flock(2) for Node without native addons: open the lock file, hand the descriptor to util-linux's
 * `flock <fd>` as an inherited fd; it calls flock(fd, LOCK_EX) on the *shared open file
 * description* and exits once the lock is granted. The lock then belongs to our still-open
 * description and lasts until we close it (or the process dies). This is the same lock upstream's
 * Go plugins take (flock on the same file), so both exclude each other.
 */
import { CniError, ErrorCode } from "./errors.js";

export interface FileLock {
  release(): Promise<void>;
}

/** Takes an exclusive flock on `path` (created with `mode` when missing), waiting for it. */
export async function flockExclusive(path: string, timeoutMs = 60_000, mode = 0o600): Promise<FileLock> {
  const { openSync, closeSync, constants } = await import("node:fs");
  const { spawn } = await import("node:child_process");
  const fd = openSync(path, constants.O_RDONLY | constants.O_CREAT, mode);
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn("flock", ["--exclusive", "--timeout", String(timeoutMs / 1000), "3"], {
        stdio: ["ignore", "ignore", "pipe", fd],
      });
      let err = "";
      child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
      child.on("error", (e) =>
        reject(new CniError(ErrorCode.IOFailure, `cannot lock ${path}: running flock(1) failed`, e.message)),
      );
      child.on("close", (code) =>
        code === 0
          ? resolve()
          : reject(
              new CniError(
                ErrorCode.TryAgainLater,
                `cannot lock ${path}`,
                err.trim() || `flock exit ${code}`,
              ),
            ),
      );
    });
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

/** Runs `fn` holding an exclusive flock on `path`. */
export async function withFlock<T>(path: string, fn: () => Promise<T> | T, mode = 0o600): Promise<T> {
  const lock = await flockExclusive(path, 60_000, mode);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
