/**
 * Whether the daemon may serve a caller: a plugin acts on its caller's current network namespace
 * and resolves paths in its caller's mount namespace and root, with its caller's privileges and
 * its caller's build of the plugins. The daemon serves only a caller for which all of these are
 * its own, so that a served call does exactly what the caller would have done itself; for any
 * other it refuses, and the caller runs the plugin in-process.
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, readFileSync, readSync, readlinkSync, statSync } from "node:fs";
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
 * The build's table of what it wrote beside the multi-call binary that a caller connects from:
 * file name -> SHA-256 of its bytes (the client and each C front). scripts/build-compiled.mjs
 * writes the files first and compiles the table into the binary (`bun build --define`); under
 * Node, or in a build without them, there is none.
 */
declare const CNI_NFT_BUILD_CLIENTS: string;
export type BuildClients = Readonly<Record<string, string>>;
export function buildClients(): BuildClients {
  return typeof CNI_NFT_BUILD_CLIENTS === "string" ? (JSON.parse(CNI_NFT_BUILD_CLIENTS) as BuildClients) : {};
}

/** The directory of this process's executable, or undefined. */
function ownDir(): string | undefined {
  try {
    return dirname(readlinkSync("/proc/self/exe"));
  } catch {
    return undefined;
  }
}

const BESIDE = [CLIENT_EXECUTABLE, ...PLUGIN_NAMES];

/** `dev:ino` of `file` as `exe` says it, or undefined when it is not there. */
function identity(file: string): string | undefined {
  try {
    const st = statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Device and inode of every file named like the client or a front beside this process's
 * executable, whoever wrote it, in a fixed order (two lists taken at different times compare as
 * strings): an upgrade that replaces one shows here.
 */
export function besideIdentities(dir = ownDir()): string[] {
  if (dir === undefined) return [];
  return BESIDE.flatMap((name) => identity(join(dir, name)) ?? []);
}

/** SHA-256 of a file's bytes, read in pieces (the Bun client is tens of megabytes). */
function sha256File(file: string): string {
  const hash = createHash("sha256");
  const fd = openSync(file, "r");
  try {
    const buf = Buffer.alloc(1 << 20);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

/**
 * Device and inode, as `exe` says them, of the executables beside this process's own that a
 * caller of the same build connects from: the client and each plugin's front, only where the
 * file's bytes are what the build wrote under that name (`table`). Another file of such a name
 * (another package's plugin in /opt/cni/bin, a changed copy) is not this build's. A sh front's
 * inode is never a process's `exe`: it has no entry. Empty where there are none (the Node path,
 * a build without them).
 */
export function clientIdentities(dir = ownDir(), table: BuildClients = buildClients()): string[] {
  if (dir === undefined) return [];
  const ids: string[] = [];
  for (const name of BESIDE) {
    const file = join(dir, name);
    const want = Object.hasOwn(table, name) ? table[name] : undefined;
    const id = want === undefined ? undefined : identity(file);
    if (id === undefined) continue;
    try {
      if (sha256File(file) === want) ids.push(id);
    } catch {
      // gone meanwhile
    }
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
