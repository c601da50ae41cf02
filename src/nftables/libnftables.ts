/**
 * nft without a process: Debian's libnftables (the library the `nft` command is a thin front for)
 * called in-process through bun:ffi, for the compiled plugins. It answers the same argv the
 * command path gets (`-f -` with stdin, `--json list ...`, `--check`, `-a`, `--terse`) with the
 * same stdout, stderr and exit status, so everything above exec.ts (error mapping back to
 * operations, the EINTR retry, listings) cannot tell the two apart.
 *
 * - `-f -`: nft reads stdin as "/dev/stdin" and names it in error locations; here the text goes
 *   into a memfd read as /proc/self/fd/N, and the name is put back in the error text.
 * - A namespace: a context's netlink socket is opened by nft_ctx_new, so the thread enters the
 *   namespace (setns) before the context is made and for every run on it, and comes back after.
 * - Contexts are kept per namespace for the process's life: nft_ctx_free closes the socket,
 *   and the kernel makes that close wait for the last commit's deferred cleanup (measured:
 *   10-15 ms after a commit that adds a chain). A kept context pays it once, at exit.
 *
 * CNI_NFT_LIBNFTABLES names the library to open (default libnftables.so.1); "off" or a path
 * that does not load means the `nft` command.
 */
import { statSync, writeSync } from "node:fs";
import { netnsPath } from "../process/runner.js";
import { loadBunFfi, cString, type BunFfi, type FfiSymbol, type Pointer } from "../ffi/bun.js";
import { loadLibc, LibcError, type Libc } from "../ffi/libc.js";
import type { ExecResult } from "./exec.js";

const SYMBOLS = {
  nft_ctx_new: { args: ["u32"], returns: "ptr" },
  nft_ctx_free: { args: ["ptr"], returns: "void" },
  nft_ctx_buffer_output: { args: ["ptr"], returns: "i32" },
  nft_ctx_buffer_error: { args: ["ptr"], returns: "i32" },
  nft_ctx_get_output_buffer: { args: ["ptr"], returns: "ptr" },
  nft_ctx_get_error_buffer: { args: ["ptr"], returns: "ptr" },
  nft_ctx_output_set_flags: { args: ["ptr", "u32"], returns: "void" },
  nft_ctx_set_dry_run: { args: ["ptr", "bool"], returns: "void" },
  nft_run_cmd_from_buffer: { args: ["ptr", "ptr"], returns: "i32" },
  nft_run_cmd_from_filename: { args: ["ptr", "ptr"], returns: "i32" },
} satisfies Record<string, FfiSymbol>;

type Native = Record<keyof typeof SYMBOLS, (...args: unknown[]) => unknown>;

/** Output flags of libnftables.h (NFT_CTX_OUTPUT_*). */
const OUTPUT_HANDLE = 1 << 3;
const OUTPUT_JSON = 1 << 4;
const OUTPUT_ECHO = 1 << 5;
const OUTPUT_TERSE = 1 << 11;

const FLAG_OPTIONS: Readonly<Record<string, number>> = {
  "-a": OUTPUT_HANDLE,
  "--handle": OUTPUT_HANDLE,
  "-j": OUTPUT_JSON,
  "--json": OUTPUT_JSON,
  "-e": OUTPUT_ECHO,
  "--echo": OUTPUT_ECHO,
  "-t": OUTPUT_TERSE,
  "--terse": OUTPUT_TERSE,
};

/** One nft invocation, read from its argv: what the library needs to do the same. */
export interface NftInvocation {
  flags: number;
  dryRun: boolean;
  version: boolean;
  /** `-f FILE` ("-" is stdin). */
  file?: string;
  /** The command words, joined by spaces as nft joins them. */
  command: string;
}

/** Parses nft's argv as the command path passes it; undefined for anything else. */
export function parseInvocation(args: readonly string[]): NftInvocation | undefined {
  const inv: NftInvocation = { flags: 0, dryRun: false, version: false, command: "" };
  let i = 0;
  for (; i < args.length && args[i]!.startsWith("-"); i++) {
    const a = args[i]!;
    if (a in FLAG_OPTIONS) inv.flags |= FLAG_OPTIONS[a]!;
    else if (a === "-c" || a === "--check") inv.dryRun = true;
    else if (a === "-v" || a === "--version") inv.version = true;
    else if ((a === "-f" || a === "--file") && i + 1 < args.length) inv.file = args[++i]!;
    else return undefined;
  }
  inv.command = args.slice(i).join(" ");
  if (inv.file !== undefined && inv.command !== "") return undefined;
  return inv;
}

/** libnftables in this process. */
export class LibNftables {
  private readonly contexts = new Map<string, Pointer>();

  constructor(
    private readonly ffi: BunFfi,
    private readonly nft: Native,
    private readonly libc: Libc,
  ) {}

  /**
   * Runs what `nft ...args` would run; undefined for an argv the library path does not handle
   * (the caller runs the command then).
   */
  run(args: readonly string[], stdin: string | undefined, netns: string | undefined): ExecResult | undefined {
    const inv = parseInvocation(args);
    if (!inv) return undefined;
    if (inv.version) return this.version(netns);
    if (netns === undefined) return this.runHere("", inv, stdin);
    let path: string;
    let key: string;
    try {
      path = netnsPath(netns);
      const st = statSync(path);
      key = `${st.dev}:${st.ino}`;
    } catch (e) {
      return gone(netns, e);
    }
    try {
      return this.libc.withNetns(path, () => this.runHere(key, inv, stdin));
    } catch (e) {
      if (e instanceof LibcError && e.syscall !== "memfd_create") return gone(path, e);
      throw e;
    }
  }

  /**
   * Frees the contexts of every namespace but this process's own. A context's netlink socket keeps
   * its namespace alive: a long-lived process (the resident daemon) drops them after each call so
   * that a container's namespace goes when the container does.
   */
  releaseOtherNamespaces(): number {
    let freed = 0;
    for (const [key, ctx] of [...this.contexts]) {
      if (key === "") continue;
      this.contexts.delete(key);
      this.nft.nft_ctx_free(ctx);
      freed++;
    }
    return freed;
  }

  /** Contexts kept, by namespace ("" is this process's own). */
  get contextCount(): number {
    return this.contexts.size;
  }

  /** `nft --version`: the version and release name nft puts in every JSON listing. */
  private version(netns: string | undefined): ExecResult {
    const res = this.run(["--json", "list", "tables", "inet"], undefined, netns)!;
    const meta = /"version": "([^"]+)", "release_name": "([^"]*)"/.exec(res.stdout);
    return meta ? { stdout: `nftables v${meta[1]} (${meta[2]})\n`, stderr: "", code: 0 } : res;
  }

  private context(key: string): Pointer {
    let ctx = this.contexts.get(key);
    if (ctx === undefined) {
      ctx = this.nft.nft_ctx_new(0) as Pointer;
      if (!ctx) throw new Error("nft_ctx_new failed");
      this.nft.nft_ctx_buffer_output(ctx);
      this.nft.nft_ctx_buffer_error(ctx);
      this.contexts.set(key, ctx);
      // Many namespaces in one long-lived process: keep the few most recent.
      if (this.contexts.size > MAX_CONTEXTS) {
        const [oldKey, old] = this.contexts.entries().next().value as [string, Pointer];
        this.contexts.delete(oldKey);
        this.nft.nft_ctx_free(old);
      }
    }
    return ctx;
  }

  /** One run on the calling thread's namespace (entered by the caller when asked). */
  private runHere(key: string, inv: NftInvocation, stdin: string | undefined): ExecResult {
    const ctx = this.context(key);
    this.nft.nft_ctx_output_set_flags(ctx, inv.flags);
    this.nft.nft_ctx_set_dry_run(ctx, inv.dryRun);
    let rc: number;
    let fileName: string | undefined;
    if (inv.file === "-") {
      const fd = this.libc.memfdCreate("nft-stdin");
      try {
        writeSync(fd, stdin ?? "");
        fileName = `/proc/self/fd/${fd}`;
        rc = this.nft.nft_run_cmd_from_filename(ctx, cString(fileName)) as number;
      } finally {
        this.libc.close(fd);
      }
    } else if (inv.file !== undefined) {
      rc = this.nft.nft_run_cmd_from_filename(ctx, cString(inv.file)) as number;
    } else {
      rc = this.nft.nft_run_cmd_from_buffer(ctx, cString(inv.command)) as number;
    }
    const stdout = this.read(this.nft.nft_ctx_get_output_buffer(ctx) as Pointer);
    let stderr = this.read(this.nft.nft_ctx_get_error_buffer(ctx) as Pointer);
    if (fileName !== undefined) stderr = stderr.replaceAll(`${fileName}:`, "/dev/stdin:");
    return { stdout, stderr, code: rc === 0 ? 0 : 1 };
  }

  private read(p: Pointer): string {
    return p ? new this.ffi.CString(p).toString() : "";
  }
}

const MAX_CONTEXTS = 8;

/**
 * The namespace cannot be entered: said as nsenter says it (strerror's text), so the error maps
 * to the same code and classifyMessage reads netns-gone.
 */
function gone(path: string, e: unknown): ExecResult {
  const why =
    e instanceof LibcError
      ? e.description
      : (e as NodeJS.ErrnoException).code === "ENOENT"
        ? "No such file or directory"
        : String((e as Error).message);
  return { stdout: "", stderr: `nft: cannot open ${path}: ${why}\n`, code: 1 };
}

let loaded: Promise<LibNftables | undefined> | undefined;

/** The library if this process loaded it already (never loads it). */
export async function loadedLibNftables(): Promise<LibNftables | undefined> {
  return loaded ? await loaded : undefined;
}

/**
 * The library when this process can use it (Bun, libc and libnftables load), else undefined.
 * Probed once per process.
 */
export function loadLibNftables(): Promise<LibNftables | undefined> {
  loaded ??= (async () => {
    const lib = process.env["CNI_NFT_LIBNFTABLES"] ?? "libnftables.so.1";
    if (lib === "off" || lib === "") return undefined;
    const [ffi, libc] = await Promise.all([loadBunFfi(), loadLibc()]);
    if (!ffi || !libc) return undefined;
    try {
      const native = ffi.dlopen(lib, SYMBOLS).symbols as unknown as Native;
      return new LibNftables(ffi, native, libc);
    } catch {
      return undefined;
    }
  })();
  return loaded;
}
