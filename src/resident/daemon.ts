/**
 * The resident daemon (docs/resident.md): a warm process that runs plugin calls handed over by the
 * plugin executables (src/resident/client.ts) through the same runPlugin path a plugin process
 * takes, with the caller's environment, working directory, umask and stdin, and sends back what
 * the call printed and its exit code. It serves only callers whose namespaces, root, privileges
 * and executable are its own (peer.ts); calls of one attachment run in order (order.ts).
 */
import { chmodSync, lstatSync, mkdirSync, readlinkSync, statSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { Server, Socket } from "node:net";
import { setEnvScope } from "../cni/ambient.js";
import { CniError } from "../cni/errors.js";
import { runPlugin, type Env, type RunOutput } from "../cni/skel.js";
import { CURRENT_VERSION } from "../cni/version.js";
import { loadLibc, type Libc } from "../ffi/libc.js";
import { loadedLibNftables } from "../nftables/libnftables.js";
import { PLUGIN_NAMES } from "../bin/names.js";
import { programsStarted } from "../process/bun-spawn.js";
import { KeyedQueue, StateGate } from "./order.js";
import {
  besideIdentities,
  clientIdentities,
  processIdentity,
  whyNotServe,
  whyNotServeEnv,
  type ProcessIdentity,
} from "./peer.js";
import {
  FrameKind,
  FrameReader,
  ProtocolError,
  encodeFrame,
  encodeResult,
  parseRequestHeader,
  type Frame,
  type RequestHeader,
} from "./protocol.js";

export interface DaemonOptions {
  /** Listen here: created 0600 in a directory made 0700 (stale sockets replaced). */
  socket?: string;
  /** Or on this inherited listening descriptor (systemd socket activation). */
  listenFd?: number;
  /** Exit after this long without a call (0: never). */
  idleExitMs: number;
  /** Log a line when each call starts and ends (tests, debugging). */
  logCalls?: boolean;
  log(line: string): void;
}

/** What the daemon counts, for its log and the tests. */
export interface DaemonCounters {
  served: number;
  refused: number;
  skipped: number;
}

/**
 * Garbage collection (a full one, synchronous: ~3-8 ms of CPU with the daemon's heap) once the
 * daemon is this long without a call, when the calls since the last one started programs (their
 * stdin's memfd goes with the garbage) or were this many; and after this many calls under a
 * steady load. Collecting after every call that finds the daemon idle made a full collection
 * most of the CPU of a call that comes alone (a runtime's usual call).
 */
const COLLECT_AFTER_IDLE_MS = 200;
const COLLECT_IDLE_AFTER_CALLS = 20;
const COLLECT_EVERY_CALLS = 100;

/** A connection must bring its whole request within this time. */
const REQUEST_TIMEOUT_MS = 10_000;

type Loader = (name: string) => Promise<{ plugin: Parameters<typeof runPlugin>[0] } | undefined>;

/** Makes the socket's directory root-only and removes a socket nobody listens on any more. */
async function prepareSocket(path: string): Promise<void> {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== process.getuid!())
    throw new Error(`${dir}: not a directory of this user; refusing to listen there`);
  if ((st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
  let old;
  try {
    old = lstatSync(path);
  } catch {
    return;
  }
  if (!old.isSocket()) throw new Error(`${path} exists and is not a socket`);
  const net = await import("node:net");
  const alive = await new Promise<boolean>((resolve) => {
    const c = net.connect(path);
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
  if (alive) throw new Error(`another resident daemon listens on ${path}`);
  unlinkSync(path);
}

function errorOutput(e: unknown, stdin: string): RunOutput {
  let version = CURRENT_VERSION;
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === "string" && v) version = v;
  } catch {
    /* keep the current version */
  }
  return {
    stdout: JSON.stringify(CniError.from(e).toJSON(version), null, 4) + "\n",
    stderr: "",
    exitCode: 1,
  };
}

/** Runs the daemon until SIGTERM, SIGINT or the idle time; resolves with the exit code. */
export async function runDaemon(o: DaemonOptions, load: Loader): Promise<number> {
  const libc: Libc | undefined = await loadLibc();
  if (!libc)
    throw new Error("the resident daemon needs the compiled binary (Bun): it reads its callers' credentials");
  const { AsyncLocalStorage } = await import("node:async_hooks");
  const scope = new AsyncLocalStorage<Env>();
  setEnvScope(scope);
  const net = await import("node:net");
  const own: ProcessIdentity = processIdentity("self");
  const clients = clientIdentities();
  const beside = besideIdentities();
  const ownEnv = { ...process.env };
  const queue = new KeyedQueue();
  const gate = new StateGate((key) => {
    const at = key.indexOf(":");
    process.umask(Number(key.slice(0, at)));
    process.chdir(key.slice(at + 1));
  });
  const counters: DaemonCounters = { served: 0, refused: 0, skipped: 0 };
  let inFlight = 0;
  let draining = false;
  let idle: ReturnType<typeof setTimeout> | undefined;
  let finish!: (code: number) => void;
  const done = new Promise<number>((r) => (finish = r));

  process.on("uncaughtException", (e) => o.log(`uncaught: ${e.stack ?? e.message}`));
  process.on("unhandledRejection", (e) => o.log(`unhandled rejection: ${String((e as Error)?.stack ?? e)}`));

  const server: Server = net.createServer((sock) => connection(sock));
  const maybeFinish = (): void => {
    if (draining && inFlight === 0) {
      server.close();
      if (o.socket !== undefined) {
        try {
          unlinkSync(o.socket);
        } catch {
          /* gone already */
        }
      }
      o.log(
        `stopping: ${counters.served} calls served, ${counters.refused} refused, ${counters.skipped} skipped`,
      );
      finish(0);
    }
  };
  const drain = (why: string): void => {
    if (draining) return;
    o.log(`draining (${why}); ${inFlight} calls in flight`);
    draining = true;
    clearTimeout(idle);
    server.close(); // no new connections; the running calls finish
    maybeFinish();
  };
  // Descriptors Bun keeps for a finished program (the memfd of its stdin) and memory go with the
  // garbage they belong to: collected when the daemon is between calls (after calls that started
  // programs, or after enough calls), and every so many calls under a steady load, so neither
  // grows with the calls served.
  let collect: ReturnType<typeof setTimeout> | undefined;
  let sinceCollected = 0;
  let startedBefore = programsStarted();
  const gc = (): void => {
    sinceCollected = 0;
    startedBefore = programsStarted();
    (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
  };
  const collectSoon = (): void => {
    clearTimeout(collect);
    if (++sinceCollected >= COLLECT_EVERY_CALLS) gc();
    else if (
      inFlight === 0 &&
      (programsStarted() !== startedBefore || sinceCollected >= COLLECT_IDLE_AFTER_CALLS)
    )
      collect = setTimeout(gc, COLLECT_AFTER_IDLE_MS);
  };
  const armIdle = (): void => {
    clearTimeout(idle);
    if (o.idleExitMs > 0 && inFlight === 0 && !draining)
      idle = setTimeout(() => drain(`idle for ${o.idleExitMs / 1000} s`), o.idleExitMs);
  };
  process.on("SIGTERM", () => drain("SIGTERM"));
  process.on("SIGINT", () => drain("SIGINT"));

  function refuse(sock: Socket, why: string): void {
    counters.refused++;
    o.log(`refused: ${why}`);
    sock.end(encodeFrame(FrameKind.Refused, why));
  }

  function connection(sock: Socket): void {
    const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    const reader = new FrameReader();
    const frames: Frame[] = [];
    let closed = false;
    let taken = false;
    // A peer that never sends a whole request does not keep a descriptor for ever.
    sock.setTimeout(REQUEST_TIMEOUT_MS, () => {
      if (!taken) sock.destroy();
    });
    sock.on("close", () => (closed = true));
    sock.on("error", () => (closed = true));
    sock.on("data", (chunk: Buffer) => {
      if (taken) return sock.destroy(); // one call per connection
      try {
        frames.push(...reader.push(chunk));
      } catch (e) {
        return refuse(sock, (e as Error).message);
      }
      if (frames.length < 2) return;
      taken = true;
      sock.setTimeout(0);
      let header: RequestHeader;
      try {
        header = parseRequestHeader(frames[0]!);
        if (frames[1]!.kind !== FrameKind.Stdin || frames.length > 2)
          throw new ProtocolError("expected stdin");
      } catch (e) {
        return refuse(sock, (e as Error).message);
      }
      const why = whyNot(typeof fd === "number" ? fd : undefined, header);
      if (why) return refuse(sock, why);
      sock.write(encodeFrame(FrameKind.Accepted, ""));
      void serve(sock, header, Buffer.from(frames[1]!.payload).toString("utf8"), () => closed);
    });
  }

  function whyNot(fd: number | undefined, header: RequestHeader): string | undefined {
    if (draining) return "the daemon is stopping";
    // The C client does not know the plugins' names: a name this build has not is run in-process,
    // where it gets the error it gets without a daemon.
    if (!(PLUGIN_NAMES as readonly string[]).includes(header.plugin))
      return `no plugin ${header.plugin} here`;
    if (fd === undefined) return "the caller's credentials cannot be read here";
    let peer: ProcessIdentity;
    try {
      peer = processIdentity(libc!.peerCredentials(fd).pid);
    } catch (e) {
      return `the caller cannot be identified: ${(e as Error).message}`;
    }
    const why = whyNotServe(own, peer, clients) ?? whyNotServeEnv(ownEnv, header.env);
    // An upgrade replaced this build: its calls go in-process until systemd starts the new daemon.
    if (
      why?.includes("another build") &&
      (readExe().endsWith(" (deleted)") || besideIdentities().join() !== beside.join())
    )
      drain("its executable was replaced");
    if (why) return why;
    try {
      if (!statSync(header.cwd).isDirectory()) return `${header.cwd}: not a directory`;
    } catch (e) {
      return `working directory ${header.cwd}: ${(e as Error).message}`;
    }
    return undefined;
  }

  async function serve(sock: Socket, h: RequestHeader, stdin: string, gone: () => boolean): Promise<void> {
    inFlight++;
    clearTimeout(idle);
    const id = h.env["CNI_CONTAINERID"];
    const ifname = h.env["CNI_IFNAME"];
    const key = id && ifname ? `${id}\0${ifname}` : undefined;
    try {
      await queue.run(key, async () => {
        // A caller that went away before its turn (its runtime's timeout) started nothing: skip it.
        if (gone()) {
          counters.skipped++;
          return;
        }
        const what = `${h.plugin} ${h.env["CNI_COMMAND"] ?? ""} ${id ?? ""}/${ifname ?? ""}`;
        const t0 = performance.now();
        if (o.logCalls) o.log(`start ${what}`);
        let out: RunOutput;
        await gate.enter(`${h.umask}:${h.cwd}`).then(
          async () => {
            try {
              const loaded = await load(h.plugin);
              out = loaded
                ? await scope.run(h.env, () => runPlugin(loaded.plugin, h.env, stdin))
                : errorOutput(new Error(`unknown plugin ${h.plugin}`), stdin);
            } catch (e) {
              out = errorOutput(e, stdin);
            } finally {
              gate.leave();
            }
          },
          (e: unknown) => (out = errorOutput(e, stdin)),
        );
        counters.served++;
        if (o.logCalls)
          o.log(`done ${what}: exit ${out!.exitCode} in ${(performance.now() - t0).toFixed(1)} ms`);
        if (!gone()) sock.end(encodeResult(out!.exitCode, out!.stdout, out!.stderr));
      });
    } finally {
      inFlight--;
      (await loadedLibNftables())?.releaseOtherNamespaces();
      collectSoon();
      if (!sock.destroyed) sock.end();
      armIdle();
      maybeFinish();
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    if (o.listenFd !== undefined) server.listen({ fd: o.listenFd }, () => resolve());
    else if (o.socket !== undefined)
      void prepareSocket(o.socket).then(() => server.listen(o.socket, () => resolve()), reject);
    else reject(new Error("neither a socket path nor a listening descriptor"));
  });
  if (o.socket !== undefined && o.listenFd === undefined) chmodSync(o.socket, 0o600);
  o.log(
    `listening on ${o.listenFd !== undefined ? `fd ${o.listenFd}` : o.socket} (pid ${process.pid}, ${own.net}, ${own.mnt}${o.idleExitMs ? `, idle exit after ${o.idleExitMs / 1000} s` : ""})`,
  );
  armIdle();
  return done;
}

function readExe(): string {
  try {
    return readlinkSync("/proc/self/exe");
  } catch {
    return "";
  }
}
