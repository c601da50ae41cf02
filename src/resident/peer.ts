/**
 * Whether the daemon may serve a caller: a plugin acts on its caller's current network namespace
 * and resolves paths in its caller's mount namespace and root, with its caller's privileges and
 * its caller's build of the plugins. The daemon serves only a caller for which all of these are
 * its own, so that a served call does exactly what the caller would have done itself; for any
 * other it refuses, and the caller runs the plugin in-process.
 */
import { readFileSync, readlinkSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { PLUGIN_NAMES } from "../bin/names.js";

/** What of a process decides what a plugin call in it does. */
export interface ProcessIdentity {
  /** readlink of /proc/PID/ns/{net,mnt,user}: "net:[4026531840]" */
  net: string;
  mnt: string;
  user: string;
  /** readlink of /proc/PID/root ("/" unless chrooted) */
  root: string;
  /** The executable: device and inode (a rebuilt or upgraded binary is another file). */
  exe: string;
  /** CapEff of /proc/PID/status. */
  capEff: string;
  uid: number;
}

const STATUS_FIELDS = { CapEff: /^CapEff:\s*(.*)$/m, Uid: /^Uid:\s*(.*)$/m };

export function processIdentity(pid: number | "self"): ProcessIdentity {
  const base = `/proc/${pid}`;
  const exe = statSync(`${base}/exe`);
  const status = readFileSync(`${base}/status`, "utf8");
  const field = (name: keyof typeof STATUS_FIELDS): string =>
    STATUS_FIELDS[name].exec(status)?.[1]?.trim() ?? "";
  return {
    net: readlinkSync(`${base}/ns/net`),
    mnt: readlinkSync(`${base}/ns/mnt`),
    user: readlinkSync(`${base}/ns/user`),
    root: readlinkSync(`${base}/root`),
    exe: `${exe.dev}:${exe.ino}`,
    capEff: field("CapEff"),
    uid: Number(field("Uid").split(/\s+/)[1] ?? NaN), // effective uid
  };
}

/** The client executable the sh fronts start when a daemon's socket exists (scripts/build-compiled.mjs). */
export const CLIENT_EXECUTABLE = "cni-nft-client";

/**
 * Device and inode, as `exe` says them, of the executables beside this process's own that a
 * caller of the same build connects from: the client and each plugin's front (a C front is the
 * client itself; a sh front's inode is never a process's `exe`, and costs nothing here). Empty
 * where there are none (the Node path, a build without them). The order is fixed, so two lists
 * taken at different times compare as strings.
 */
export function clientIdentities(): string[] {
  let dir: string;
  try {
    dir = dirname(readlinkSync("/proc/self/exe"));
  } catch {
    return [];
  }
  const ids: string[] = [];
  for (const name of [CLIENT_EXECUTABLE, ...PLUGIN_NAMES])
    try {
      const st = statSync(join(dir, name));
      ids.push(`${st.dev}:${st.ino}`);
    } catch {
      // not built here
    }
  return ids;
}

const CHECKS: ReadonlyArray<[keyof ProcessIdentity, string]> = [
  ["net", "another network namespace"],
  ["mnt", "another mount namespace"],
  ["user", "another user namespace"],
  ["root", "another root directory"],
  ["uid", "another user"],
  ["capEff", "other capabilities"],
  ["exe", "another build of the plugins"],
];

/**
 * Why the daemon must not serve `peer`, or undefined when it may. `clients`: the identities of the
 * same build's client and fronts (clientIdentities, read when the daemon started), served as the
 * daemon's own executable.
 */
export function whyNotServe(
  own: ProcessIdentity,
  peer: ProcessIdentity,
  clients: readonly string[] = [],
): string | undefined {
  for (const [key, what] of CHECKS) {
    if (key === "exe" && clients.includes(peer.exe)) continue;
    if (own[key] !== peer[key]) return `caller in ${what} (${String(peer[key])}, daemon ${String(own[key])})`;
  }
  return undefined;
}

/**
 * Variables read once per process (the library probed at the first nft run): a call whose value
 * differs from the daemon's would not run the same way, so it is refused.
 */
export const PROCESS_WIDE_VARIABLES = ["CNI_NFT_LIBNFTABLES"] as const;

export function whyNotServeEnv(
  own: Readonly<Record<string, string | undefined>>,
  call: Readonly<Record<string, string | undefined>>,
): string | undefined {
  for (const k of PROCESS_WIDE_VARIABLES)
    if (own[k] !== call[k])
      return `${k} is ${JSON.stringify(call[k] ?? null)} for the caller, ${JSON.stringify(own[k] ?? null)} here`;
  return undefined;
}
