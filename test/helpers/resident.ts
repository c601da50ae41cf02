/**
 * A resident daemon (docs/resident.md) for a test: started from the compiled binary inside a
 * throwaway host namespace (nsenter: network namespace only, so it shares the test's mount
 * namespace, as plugins started the same way do), its socket in a root-only temporary directory
 * that only the calls given `env` use, stopped with SIGTERM.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  readlinkSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./cni.js";
import { startBackground, waitFor, type Background } from "./background.js";
import { run, type Netns } from "./netns.js";

export const COMPILED = join(ROOT, "dist", "compiled");
export const haveCompiled = existsSync(join(COMPILED, "cni-nft-plugins"));

/** The first `n` bytes of a file (fewer when it is shorter). */
export function fileHead(file: string, n: number): Buffer {
  const fd = openSync(file, "r");
  try {
    const b = Buffer.alloc(n);
    return b.subarray(0, readSync(fd, b, 0, n, 0));
  } finally {
    closeSync(fd);
  }
}

/** Whether the plugin front `name` of dist/compiled is a C front (an ELF executable), not sh. */
export function isCFront(name = "tuning"): boolean {
  const file = join(COMPILED, name);
  return existsSync(file) && fileHead(file, 4).toString("latin1") === "\x7fELF";
}

export interface Resident {
  socket: string;
  /** What plugin calls need to use it. */
  env: Record<string, string>;
  pid: number;
  log(): string;
  /** Lines of the log that match. */
  lines(re: RegExp): string[];
  /** Open descriptors and resident memory (KiB), from /proc. */
  usage(): { fds: number; rssKiB: number; fdTargets: string[] };
  stop(): Promise<void>;
}

export async function startResident(
  host: Netns,
  opts: { args?: string[]; enter?: "nsenter" | "ip-netns-exec"; compiled?: string } = {},
): Promise<Resident> {
  const dir = mkdtempSync(join(tmpdir(), "cni-nft-resident-"));
  const socket = join(dir, "plugins.sock");
  const log = join(dir, "daemon.log");
  const argv = [
    join(opts.compiled ?? COMPILED, "cni-nft"),
    "resident",
    "--socket",
    socket,
    "--log-calls",
    ...(opts.args ?? []),
  ];
  const enter =
    opts.enter === "ip-netns-exec"
      ? ["ip", "netns", "exec", host.name]
      : ["nsenter", `--net=${host.path}`, "--"];
  const bg: Background = startBackground([...enter, ...argv], log);
  await waitFor("the resident daemon to listen", () =>
    bg.output().includes("listening on") ? true : undefined,
  );
  const pid = Number(/\(pid (\d+),/.exec(bg.output())?.[1]);
  return {
    socket,
    env: { CNI_NFT_RESIDENT_SOCKET: socket },
    pid,
    log: () => bg.output(),
    lines: (re) =>
      bg
        .output()
        .split("\n")
        .filter((l) => re.test(l)),
    usage() {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const fds = readdirSync(`/proc/${pid}/fd`);
      const target = (fd: string): string => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/\d+/g, "N");
        } catch {
          return "gone";
        }
      };
      return {
        fds: fds.length,
        rssKiB: Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1]),
        fdTargets: fds.map(target).sort(),
      };
    },
    async stop() {
      await bg.stop(10_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A plugin call through the daemon started as a runtime starts it, left running (to kill it, or signal the daemon). */
export function startClient(
  host: Netns,
  daemon: Resident,
  plugin: string,
  verb: string,
  containerId: string,
  netns: string,
): ChildProcessWithoutNullStreams {
  const env = {
    PATH: process.env["PATH"]!,
    CNI_COMMAND: verb,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: netns,
    CNI_IFNAME: "eth0",
    CNI_PATH: COMPILED,
    ...daemon.env,
  };
  return spawn("nsenter", [`--net=${host.path}`, "--", join(COMPILED, plugin)], { env });
}

/**
 * Holds a host-local store's lock (flock(1), in the background) so that a call needing it stays
 * in flight in the daemon until `release`: what happens to a call in the middle is then tested
 * whatever the machine's speed.
 */
export async function holdStoreLock(dataDir: string, network: string): Promise<{ release(): void }> {
  mkdirSync(join(dataDir, network), { recursive: true });
  const lock = join(dataDir, network, "lock");
  // -o: the lock stays with flock itself, not with sleep; the group goes at once on release.
  const holder = spawn("flock", ["-o", lock, "sleep", "300"], { stdio: "ignore", detached: true });
  await waitFor("the store lock to be held", async () =>
    (await run(["flock", "-n", lock, "true"])).code !== 0 ? true : undefined,
  );
  return { release: () => process.kill(-holder.pid!, "SIGKILL") };
}
