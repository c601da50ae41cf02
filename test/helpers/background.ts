/** Long-running processes for integration tests (a DHCP server, a daemon, containerd): started with their output in a log file, stopped by their own PID. */
import { spawn, type ChildProcess } from "node:child_process";
import { openSync, closeSync, readFileSync, existsSync } from "node:fs";

export interface Background {
  child: ChildProcess;
  log: string;
  /** The log so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

export function startBackground(
  argv: string[],
  log: string,
  env: NodeJS.ProcessEnv = process.env,
): Background {
  const fd = openSync(log, "a");
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  return {
    child,
    log,
    output: () => (existsSync(log) ? readFileSync(log, "utf8") : ""),
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `probe` until it returns a value (not undefined), failing with `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
