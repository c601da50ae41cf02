/**
 * A bench in a /run of its own. The plugins' lock files (/run/cni-nft-*.lock), their records
 * (/run/cni-nft/records), the resident daemon's default socket and /run/netns are one per
 * machine, not per network namespace: every test suite, soak or bench on the machine takes the
 * same locks, and a bench's calls waited up to 3 s for them (docs/performance.md, "The iptables
 * backends through the daemon"). So a bench re-executes itself once, before it starts anything,
 * in a new mount namespace with private propagation (`unshare --mount --propagation private`)
 * and mounts a fresh tmpfs on /run there: nothing it mounts is seen outside, and the namespaces
 * it adds under /run/netns exist only inside (its cleanup runs inside too; when the last process
 * of the mount namespace ends, they go with it). `--shared-run` keeps the machine's /run.
 * A bench that drives the backends in-process (bench/iptables-steps.ts) asks for a network
 * namespace of its own too (`network`): then it re-executes itself under `unshare --net` even
 * with `--shared-run`, so the tables it writes are never the machine's.
 *
 * The outer process only waits: the inner one is in a process group of its own, so a terminal's
 * Ctrl-C reaches it once, forwarded (a second SIGINT would kill it in the middle of its cleanup).
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import { constants } from "node:os";

/** The outer process's mount namespace, for the inner one to check that it is in another. */
const OUTER_ENV = "CNI_NFT_BENCH_OUTER_MNTNS";
/** The same for the network namespace, with `network`. */
const OUTER_NET_ENV = "CNI_NFT_BENCH_OUTER_NETNS";

/** The option every bench that takes the plugins' locks accepts (for benchArgs). */
export const SHARED_RUN_OPTION = { "shared-run": { type: "boolean" } } as const;
export const SHARED_RUN_USAGE =
  "  --shared-run           keep the machine's /run (default: a private tmpfs, bench/lib/private-run.ts)";

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

const mountNamespace = (): string => readlinkSync("/proc/self/ns/mnt");
const networkNamespace = (): string => readlinkSync("/proc/self/ns/net");

export interface PrivateRunOptions {
  /** A network namespace of its own as well, with or without --shared-run. */
  network?: boolean;
}

/** Mounts the tmpfs, after making sure it cannot land on the machine's /run. */
function mountPrivateRun(outer: string): void {
  if (mountNamespace() === outer)
    throw new Error(`not in a mount namespace of its own (${outer}): refusing to mount over /run`);
  const shared = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => / shared:\d+/.test(l));
  if (shared.length)
    throw new Error(`mounts still propagate to the machine: refusing to mount over /run (${shared[0]})`);
  execFileSync("mount", ["-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "cni-nft-bench-run", "/run"]);
}

/**
 * Puts this bench in a private /run, or keeps the machine's with `shared`; returns the line for
 * the bench's header. In the outer process it never returns: it runs the same command line again
 * inside `unshare` and exits as that did. Call it after the arguments are checked (--help and
 * usage errors need neither root nor a namespace) and before anything else.
 */
export async function privateRun(shared: boolean | undefined, opts: PrivateRunOptions = {}): Promise<string> {
  const net = opts.network ? "; a network namespace of its own" : "";
  if (shared && !opts.network)
    return "/run: the machine's (--shared-run): its lock files are shared with everything else";
  const outer = process.env[OUTER_ENV];
  const outerNet = process.env[OUTER_NET_ENV];
  if (outer !== undefined || outerNet !== undefined) {
    // The bench's own children must not mount again.
    delete process.env[OUTER_ENV];
    delete process.env[OUTER_NET_ENV];
    if (opts.network && (outerNet === undefined || networkNamespace() === outerNet))
      throw new Error(
        `not in a network namespace of its own (${outerNet}): refusing to write the host's tables`,
      );
    if (shared)
      return `/run: the machine's (--shared-run): its lock files are shared with everything else${net}`;
    if (outer === undefined)
      throw new Error("not in a mount namespace of its own: refusing to mount over /run");
    mountPrivateRun(outer);
    return `/run: private (a tmpfs in the bench's own mount namespace; --shared-run for the machine's)${net}`;
  }
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (!shared) env[OUTER_ENV] = mountNamespace();
  if (opts.network) env[OUTER_NET_ENV] = networkNamespace();
  const child = spawn(
    "unshare",
    [
      ...(opts.network ? ["--net"] : []),
      ...(shared ? [] : ["--mount", "--propagation", "private"]),
      "--",
      process.execPath,
      ...process.execArgv,
      ...process.argv.slice(1),
    ],
    { stdio: "inherit", detached: true, env },
  );
  for (const signal of SIGNALS) process.on(signal, () => child.kill(signal));
  const code = await new Promise<number>((resolve) => {
    child.once("error", (e) => {
      console.error(`unshare: ${e.message}`);
      resolve(1);
    });
    child.once("exit", (c, s) => resolve(c ?? 128 + (s ? constants.signals[s] : 0)));
  });
  process.exit(code);
}
