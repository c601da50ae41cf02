/**
 * The resident daemon's wire format (docs/resident.md): frames of `[u32 big-endian length][u8
 * kind][payload]` on a Unix stream socket. A request is a header frame (JSON: plugin, environment,
 * cwd, umask) and a stdin frame (the bytes as read). The daemon answers `refused` (the client runs
 * the plugin in-process), or `accepted` (it will run it; the client must not run it itself), and
 * later a result header (JSON: exit code), the stdout and the stderr frames.
 *
 * Loaded by the plugins' client path, so it imports nothing.
 */

export const PROTOCOL_VERSION = 1;

/** Whatever a frame's length says, none is larger: a stray peer cannot make either side allocate. */
export const MAX_FRAME_BYTES = 16 << 20;

export const FrameKind = {
  RequestHeader: 1,
  Stdin: 2,
  Refused: 3,
  Accepted: 4,
  ResultHeader: 5,
  Stdout: 6,
  Stderr: 7,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export interface Frame {
  kind: number;
  payload: Uint8Array;
}

export interface RequestHeader {
  v: number;
  /** The plugin the client was started as (bridge, portmap, ...). */
  plugin: string;
  /** The client's whole environment (CNI_NFT_PLUGIN removed, as the in-process path removes it). */
  env: Record<string, string>;
  cwd: string;
  umask: number;
}

export interface ResultHeader {
  exitCode: number;
}

export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
}

export function encodeFrame(kind: FrameKind, payload: Uint8Array | string): Uint8Array {
  const body = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  if (body.byteLength + 1 > MAX_FRAME_BYTES) throw new ProtocolError(`frame of ${body.byteLength} bytes`);
  const out = new Uint8Array(5 + body.byteLength);
  new DataView(out.buffer).setUint32(0, body.byteLength + 1);
  out[4] = kind;
  out.set(body, 5);
  return out;
}

export function encodeJsonFrame(kind: FrameKind, value: unknown): Uint8Array {
  return encodeFrame(kind, JSON.stringify(value));
}

export function encodeRequest(header: RequestHeader, stdin: Uint8Array): Uint8Array {
  return concat([encodeJsonFrame(FrameKind.RequestHeader, header), encodeFrame(FrameKind.Stdin, stdin)]);
}

export function encodeResult(exitCode: number, stdout: string, stderr: string): Uint8Array {
  return concat([
    encodeJsonFrame(FrameKind.ResultHeader, { exitCode } satisfies ResultHeader),
    encodeFrame(FrameKind.Stdout, stdout),
    encodeFrame(FrameKind.Stderr, stderr),
  ]);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/** Cuts a byte stream into frames, whatever the chunks it arrives in. */
export class FrameReader {
  private buf: Uint8Array = new Uint8Array(0);

  /** Adds a chunk; returns the frames it completed. Throws a ProtocolError on a bad length. */
  push(chunk: Uint8Array): Frame[] {
    this.buf = this.buf.byteLength === 0 ? chunk.slice() : concat([this.buf, chunk]);
    const frames: Frame[] = [];
    let off = 0;
    while (this.buf.byteLength - off >= 4) {
      const len = new DataView(this.buf.buffer, this.buf.byteOffset + off).getUint32(0);
      if (len < 1 || len > MAX_FRAME_BYTES) throw new ProtocolError(`frame length ${len}`);
      if (this.buf.byteLength - off - 4 < len) break;
      frames.push({ kind: this.buf[off + 4]!, payload: this.buf.slice(off + 5, off + 4 + len) });
      off += 4 + len;
    }
    this.buf = this.buf.slice(off);
    return frames;
  }

  /** Bytes received that are not a whole frame yet. */
  get pending(): number {
    return this.buf.byteLength;
  }
}

export function decodeJson<T>(frame: Frame): T {
  try {
    return JSON.parse(new TextDecoder().decode(frame.payload)) as T;
  } catch (e) {
    throw new ProtocolError(`frame ${frame.kind}: ${(e as Error).message}`);
  }
}

/** A request header as received: every field checked, so the daemon never acts on a malformed one. */
export function parseRequestHeader(frame: Frame): RequestHeader {
  if (frame.kind !== FrameKind.RequestHeader)
    throw new ProtocolError(`expected a request, got frame ${frame.kind}`);
  const h = decodeJson<Partial<RequestHeader>>(frame);
  if (h.v !== PROTOCOL_VERSION)
    throw new ProtocolError(`protocol version ${String(h.v)}, this daemon speaks ${PROTOCOL_VERSION}`);
  if (typeof h.plugin !== "string" || !/^[a-z][a-z0-9-]*$/.test(h.plugin))
    throw new ProtocolError("plugin: not a plugin name");
  if (typeof h.cwd !== "string" || !h.cwd.startsWith("/"))
    throw new ProtocolError("cwd: not an absolute path");
  if (typeof h.umask !== "number" || !Number.isInteger(h.umask) || h.umask < 0 || h.umask > 0o777)
    throw new ProtocolError("umask: not a file mode mask");
  if (typeof h.env !== "object" || h.env === null || Array.isArray(h.env))
    throw new ProtocolError("env: not an object");
  for (const [k, v] of Object.entries(h.env))
    if (typeof v !== "string" || k.includes("=") || k === "")
      throw new ProtocolError(`env: ${JSON.stringify(k)}`);
  return h as RequestHeader;
}
