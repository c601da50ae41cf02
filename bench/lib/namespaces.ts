/**
 * A bench run's namespaces, all named with one prefix, removed with what would outlive them: the
 * processes still inside (servers, a driver, plugins) and the plugins' records of each namespace
 * (/run/cni-nft/records/<component>/netns-<inode>: a later namespace with the same inode would
 * take them for its own). At the end of a run and on SIGINT, SIGTERM or SIGHUP, which used to
 * leave both behind. Synchronous, so a signal handler can run it.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { dropRecords } from "../../test/helpers/netns.js";

const NETNS_DIR = "/run/netns";

/** Removes the namespaces whose name starts with `prefix` (or is in `names`). */
export function removeNamespaces(prefix: string, names?: readonly string[]): void {
  if (!existsSync(NETNS_DIR)) return;
  const ours = readdirSync(NETNS_DIR).filter((n) => (names ? names.includes(n) : n.startsWith(prefix)));
  for (const name of ours) {
    let pids: string[] = [];
    try {
      pids = execFileSync("ip", ["netns", "pids", name], { encoding: "utf8" }).split("\n").filter(Boolean);
    } catch {
      // not a namespace any more
    }
    for (const pid of pids)
      if (Number(pid) !== process.pid)
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          // gone already
        }
    dropRecords(join(NETNS_DIR, name));
  }
  if (ours.length)
    spawnSync("ip", ["-force", "-batch", "-"], { input: ours.map((n) => `netns del ${n}\n`).join("") });
}

const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;

/**
 * On SIGINT, SIGTERM or SIGHUP: remove the run's namespaces and its temporary `paths`, and exit
 * as the signal would.
 */
export function removeNamespacesOnSignals(prefix: string, paths: readonly string[] = []): void {
  for (const [signal, n] of Object.entries(SIGNALS))
    process.once(signal, () => {
      console.error(
        `\n${signal}: removing the namespaces ${prefix}*${paths.length ? ` and ${paths.join(", ")}` : ""}`,
      );
      removeNamespaces(prefix);
      for (const p of paths) rmSync(p, { recursive: true, force: true });
      process.exit(128 + n);
    });
}
