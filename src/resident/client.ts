/**
 * The plugins' thin-client path (docs/resident.md): hand one plugin call to the resident daemon
 * and give back exactly what it printed and its exit code. Anything short of an `accepted` answer
 * (no socket, a socket not root's own, connection refused, the daemon refuses this caller, a
 * malformed answer) means "not served": the caller runs the plugin in-process as if no daemon
 * existed. Loaded by the compiled entry (src/bin/compiled.ts) before any plugin code, so it imports only the protocol and
 * Bun's own socket (no node:net: its stream machinery costs a start more than the whole call).
 */
import { lstatSync } from "node:fs";
import { dirname } from "node:path";
import {
  FrameKind,
  FrameReader,
  decodeJson,
  encodeRequest,
  type RequestHeader,
  type ResultHeader,
} from "./protocol.js";

/** Where the daemon listens unless CNI_NFT_RESIDENT_SOCKET says otherwise. */
export const DEFAULT_SOCKET = "/run/cni-nft/resident/plugins.sock";

/** An answer must start within this time, or the client runs the plugin itself. */
const ANSWER_TIMEOUT_MS = 5_000;

export type Outcome =
  | { served: false; why: string }
  | { served: true; exitCode: number; stdout: Uint8Array; stderr: Uint8Array }
  /** Accepted, then the connection ended without a result: the work may have been done in part. */
  | { served: true; lost: true };

/** The socket to use, or undefined: turned off, or a path whose directory is not root-only. */
export function residentSocket(env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (env["CNI_NFT_RESIDENT"] === "off") return undefined;
  const path = env["CNI_NFT_RESIDENT_SOCKET"] || DEFAULT_SOCKET;
  try {
    // A root plugin hands its config to whoever listens there: only a socket in a directory
    // nobody but root can write to (and the socket root's own) is trusted.
    const dir = lstatSync(dirname(path));
    if (!dir.isDirectory() || dir.uid !== 0 || (dir.mode & 0o077) !== 0) return undefined;
    const sock = lstatSync(path);
    if (!sock.isSocket() || sock.uid !== 0) return undefined;
  } catch {
    return undefined;
  }
  return path;
}

/** The subset of Bun.connect the client uses (tsc sees Node's types only). */
interface BunSocket {
  write(data: Uint8Array): number;
  end(): void;
}
interface BunConnect {
  connect(opts: {
    unix: string;
    socket: {
      open?(s: BunSocket): void;
      data(s: BunSocket, chunk: Uint8Array): void;
      close?(s: BunSocket): void;
      error?(s: BunSocket, e: Error): void;
      connectError?(s: BunSocket, e: Error): void;
      drain?(s: BunSocket): void;
    };
  }): Promise<BunSocket>;
}

/** Sends the call and waits for the daemon's answer. Never throws: failures are "not served". */
export function callResident(socket: string, header: RequestHeader, stdin: Uint8Array): Promise<Outcome> {
  const bun = (globalThis as { Bun?: BunConnect }).Bun;
  if (!bun) return Promise.resolve({ served: false, why: "not on Bun" });
  return new Promise<Outcome>((resolve) => {
    const reader = new FrameReader();
    let accepted = false;
    let result: ResultHeader | undefined;
    let stdout: Uint8Array | undefined;
    let settled = false;
    let pending: Uint8Array;
    try {
      pending = encodeRequest(header, stdin);
    } catch (e) {
      resolve({ served: false, why: (e as Error).message }); // a stdin past the frame limit
      return;
    }
    const settle = (o: Outcome, s?: BunSocket): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s?.end();
      resolve(o);
    };
    const notServed = (why: string, s?: BunSocket): void =>
      settle(accepted ? { served: true, lost: true } : { served: false, why }, s);
    const timer = setTimeout(() => {
      if (!accepted) settle({ served: false, why: "no answer in time" });
    }, ANSWER_TIMEOUT_MS);
    const flush = (s: BunSocket): void => {
      // A large stdin may not fit the socket buffer at once: the rest goes out on drain.
      while (pending.byteLength > 0) {
        const n = s.write(pending);
        if (n <= 0) return;
        pending = pending.subarray(n);
      }
    };
    bun
      .connect({
        unix: socket,
        socket: {
          open: flush,
          drain: flush,
          data(s, chunk) {
            let frames;
            try {
              frames = reader.push(chunk);
            } catch {
              return notServed("malformed answer", s);
            }
            for (const f of frames) {
              if (!accepted) {
                if (f.kind === FrameKind.Refused) return notServed(new TextDecoder().decode(f.payload), s);
                if (f.kind !== FrameKind.Accepted) return notServed(`unexpected frame ${f.kind}`, s);
                accepted = true;
                clearTimeout(timer);
              } else if (f.kind === FrameKind.ResultHeader && !result) {
                try {
                  result = decodeJson<ResultHeader>(f);
                } catch {
                  return notServed("malformed result", s);
                }
              } else if (f.kind === FrameKind.Stdout && result && !stdout) {
                stdout = f.payload;
              } else if (f.kind === FrameKind.Stderr && result && stdout) {
                return settle({ served: true, exitCode: result.exitCode, stdout, stderr: f.payload }, s);
              } else return notServed(`unexpected frame ${f.kind}`, s);
            }
          },
          close: () => notServed("connection closed"),
          error: (s, e) => notServed(e.message, s),
          connectError: (_s, e) => notServed(e.message),
        },
      })
      .catch((e: Error) => notServed(e.message));
  });
}
