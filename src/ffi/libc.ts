/**
 * A small libc binding for the compiled (Bun) plugins: the system calls that spare a process
 * (setns instead of nsenter, flock instead of flock(1), netlink sockets instead of `conntrack`
 * or `ip`). {@link loadLibc} gives undefined on Node or where libc cannot be opened; callers keep
 * their process-based path for that case.
 *
 * errno is read right after the failing call; nothing of the project's runs in between.
 */
import { cString, loadBunFfi, type BunFfi, type FfiSymbol } from "./bun.js";

export const O_RDONLY = 0;
export const O_CLOEXEC = 0o2000000;
export const CLONE_NEWNET = 0x40000000;
export const MFD_CLOEXEC = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

/**
 * A failed system call: `code` is the errno name (`ENOENT`), `errno` its number, `description`
 * what strerror says ("No such file or directory": the text tools print and the project's
 * message classifiers read).
 */
export class LibcError extends Error {
  override readonly name = "LibcError";
  readonly code: string;
  readonly description: string;
  constructor(
    readonly syscall: string,
    readonly errno: number,
    what: string,
  ) {
    const [code, text] = errorMap().get(-errno) ?? [`errno ${errno}`, `errno ${errno}`];
    const description = text.charAt(0).toUpperCase() + text.slice(1);
    super(`${syscall} ${what}: ${description}`);
    this.code = code;
    this.description = description;
  }
}

/** node:os and node:util loaded on first use: at import they cost every plugin start about a millisecond. */
const errnos = (): Record<string, number> => process.getBuiltinModule("node:os").constants.errno;
const errorMap = (): Map<number, [string, string]> =>
  process.getBuiltinModule("node:util").getSystemErrorMap();

const SYMBOLS = {
  open: { args: ["ptr", "i32", "u32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  setns: { args: ["i32", "i32"], returns: "i32" },
  flock: { args: ["i32", "i32"], returns: "i32" },
  memfd_create: { args: ["ptr", "u32"], returns: "i32" },
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
  setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
  getsockopt: { args: ["i32", "i32", "i32", "ptr", "ptr"], returns: "i32" },
  send: { args: ["i32", "ptr", "u64", "i32"], returns: "i64" },
  recv: { args: ["i32", "ptr", "u64", "i32"], returns: "i64" },
  __errno_location: { args: [], returns: "ptr" },
} satisfies Record<string, FfiSymbol>;

type Native = Record<keyof typeof SYMBOLS, (...args: unknown[]) => unknown>;

/** The calls, each throwing a {@link LibcError} on failure unless it says otherwise. */
export class Libc {
  constructor(
    private readonly ffi: BunFfi,
    private readonly native: Native,
  ) {}

  /** errno of the last failed call on this thread. */
  errno(): number {
    return this.ffi.read.i32(this.native.__errno_location() as number, 0);
  }

  private check(syscall: string, what: string, rc: number | bigint): number {
    const n = Number(rc);
    if (n < 0) throw new LibcError(syscall, this.errno(), what);
    return n;
  }

  open(path: string, flags = O_RDONLY | O_CLOEXEC, mode = 0): number {
    return this.check("open", path, this.native.open(cString(path), flags, mode) as number);
  }

  close(fd: number): void {
    this.native.close(fd);
  }

  setns(fd: number, nstype: number): void {
    this.check("setns", `fd ${fd}`, this.native.setns(fd, nstype) as number);
  }

  /** flock(2); false when `LOCK_NB` was given and the lock is held elsewhere. */
  flock(fd: number, op: number): boolean {
    if ((this.native.flock(fd, op) as number) === 0) return true;
    const errno = this.errno();
    if (errno === errnos()["EWOULDBLOCK"] && op & LOCK_NB) return false;
    throw new LibcError("flock", errno, `fd ${fd}`);
  }

  /** An anonymous file in memory (closed on exec). */
  memfdCreate(name: string, flags = MFD_CLOEXEC): number {
    return this.check("memfd_create", name, this.native.memfd_create(cString(name), flags) as number);
  }

  socket(domain: number, type: number, protocol: number): number {
    return this.check(
      "socket",
      `${domain}/${type}/${protocol}`,
      this.native.socket(domain, type, protocol) as number,
    );
  }

  bind(fd: number, address: Uint8Array): void {
    this.check("bind", `fd ${fd}`, this.native.bind(fd, address, address.byteLength) as number);
  }

  setsockopt(fd: number, level: number, option: number, value: Uint8Array): void {
    this.check(
      "setsockopt",
      `fd ${fd} ${level}/${option}`,
      this.native.setsockopt(fd, level, option, value, value.byteLength) as number,
    );
  }

  /** SO_PEERCRED of a connected Unix socket: who connected (pid as this process's namespace sees it). */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number } {
    const cred = new Uint8Array(12); // struct ucred: pid_t pid; uid_t uid; gid_t gid
    const len = new Uint32Array([cred.byteLength]);
    this.check(
      "getsockopt",
      `fd ${fd} SO_PEERCRED`,
      this.native.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, len) as number,
    );
    const v = new DataView(cred.buffer);
    return { pid: v.getInt32(0, true), uid: v.getUint32(4, true), gid: v.getUint32(8, true) };
  }

  /** send(2) of the whole buffer; returns the bytes sent. */
  send(fd: number, data: Uint8Array, flags = 0): number {
    return this.check("send", `fd ${fd}`, this.native.send(fd, data, data.byteLength, flags) as bigint);
  }

  /** recv(2) into `into`; returns the bytes received (blocking unless the socket is not). */
  recv(fd: number, into: Uint8Array, flags = 0): number {
    return this.check("recv", `fd ${fd}`, this.native.recv(fd, into, into.byteLength, flags) as bigint);
  }

  /**
   * Runs `fn` with the calling thread in the network namespace at `path` (`/run/netns/x`,
   * `/proc/PID/ns/net`), then returns the thread to its own namespace, whatever `fn` did. `fn`
   * must be synchronous: nothing else of this thread may run while it is away. Sockets opened
   * inside stay in that namespace.
   */
  withNetns<T>(path: string, fn: () => T): T {
    const own = this.open("/proc/thread-self/ns/net");
    try {
      const target = this.open(path);
      try {
        this.setns(target, CLONE_NEWNET);
      } finally {
        this.close(target);
      }
      try {
        const result = fn();
        if (typeof (result as { then?: unknown } | undefined)?.then === "function")
          throw new Error("withNetns: fn must be synchronous (it returned a promise)");
        return result;
      } finally {
        // Staying in the container's namespace would send every later change there: fail loudly.
        this.setns(own, CLONE_NEWNET);
      }
    } finally {
      this.close(own);
    }
  }
}

let loaded: Promise<Libc | undefined> | undefined;

/** libc under Bun, undefined on Node or when it cannot be opened. Opened once per process. */
export function loadLibc(): Promise<Libc | undefined> {
  loaded ??= loadBunFfi().then((ffi) => {
    if (!ffi) return undefined;
    try {
      const lib = ffi.dlopen("libc.so.6", SYMBOLS);
      return new Libc(ffi, lib.symbols as unknown as Native);
    } catch {
      return undefined;
    }
  });
  return loaded;
}
