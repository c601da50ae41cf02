/**
 * Netlink requests from the compiled plugins over the libc binding: a message is a header, a
 * family header and attributes; the kernel answers with an ACK or an errno. Messages are built
 * here as bytes (host byte order for netlink's own fields, as the kernel reads them).
 */
import type { Libc } from "./libc.js";
import { LibcError } from "./libc.js";

export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLA_F_NESTED = 0x8000;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLMSG_HDRLEN = 16;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;

/** The kernel refused a request: `errno` as it answered (positive), `code` its name. */
export class NetlinkError extends Error {
  override readonly name = "NetlinkError";
  readonly code: string;
  constructor(
    readonly errno: number,
    what: string,
  ) {
    const e = new LibcError("netlink", errno, what);
    super(e.message);
    this.code = e.code;
  }
}

const align4 = (n: number): number => (n + 3) & ~3;

/** One attribute: type, payload, padded to 4 bytes. */
export function attr(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(align4(4 + payload.byteLength));
  const view = new DataView(out.buffer);
  view.setUint16(0, 4 + payload.byteLength, true);
  view.setUint16(2, type, true);
  out.set(payload, 4);
  return out;
}

/** A nested attribute holding `children`. */
export function nested(type: number, ...children: Uint8Array[]): Uint8Array {
  return attr(type | NLA_F_NESTED, concatBytes(children));
}

export function u8(v: number): Uint8Array {
  return Uint8Array.of(v);
}

/** A 16-bit value in network byte order (ports). */
export function be16(v: number): Uint8Array {
  return Uint8Array.of((v >> 8) & 0xff, v & 0xff);
}

/** A 32-bit value in host byte order (netlink's flags and counters). */
export function u32(v: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, v, true);
  return out;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** The attributes of a message body from `offset` on, by type (nested and byte-order bits cleared). */
export function parseAttrs(body: Uint8Array, offset = 0): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  for (let at = offset; at + 4 <= body.byteLength;) {
    const len = view.getUint16(at, true);
    if (len < 4 || at + len > body.byteLength) break;
    out.set(view.getUint16(at + 2, true) & 0x3fff, body.subarray(at, at + len));
    at += align4(len);
  }
  return out;
}

/** An attribute's payload (without its 4-byte header). */
export function payloadOf(attribute: Uint8Array): Uint8Array {
  return attribute.subarray(4);
}

/** A netlink socket of one protocol, in the namespace of the thread that opened it. */
export class NetlinkSocket {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly buffer = new Uint8Array(65536);

  private constructor(
    private readonly libc: Libc,
    private readonly fd: number,
  ) {}

  /** Opens a socket; replies wait at most `timeoutMs` (a kernel that never answers fails). */
  static open(libc: Libc, protocol: number, timeoutMs = 5000): NetlinkSocket {
    const fd = libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    const timeval = new Uint8Array(16);
    const view = new DataView(timeval.buffer);
    view.setBigInt64(0, BigInt(Math.floor(timeoutMs / 1000)), true);
    view.setBigInt64(8, BigInt((timeoutMs % 1000) * 1000), true);
    try {
      libc.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeval);
    } catch (e) {
      libc.close(fd);
      throw e;
    }
    return new NetlinkSocket(libc, fd);
  }

  /**
   * Sends one request (`payload`: the family header and attributes) asking for an ACK, and
   * waits for it; throws a {@link NetlinkError} with the errno the kernel answered.
   */
  request(type: number, flags: number, payload: Uint8Array, what: string): void {
    const seq = this.send(type, flags | NLM_F_ACK, payload);
    this.receive(seq, what, () => undefined);
  }

  /** The same for a request the kernel answers with messages before its ACK (a GET of one object): their bodies. */
  query(type: number, flags: number, payload: Uint8Array, what: string): Uint8Array[] {
    const seq = this.send(type, flags | NLM_F_ACK, payload);
    const bodies: Uint8Array[] = [];
    this.receive(seq, what, (body) => bodies.push(body.slice()));
    return bodies;
  }

  /** Sends a dump request and returns the body of every message of the answer. */
  dump(type: number, payload: Uint8Array, what: string): Uint8Array[] {
    const seq = this.send(type, NLM_F_DUMP, payload);
    const bodies: Uint8Array[] = [];
    this.receive(seq, what, (body) => bodies.push(body.slice()));
    return bodies;
  }

  private send(type: number, flags: number, payload: Uint8Array): number {
    const seq = ++this.seq;
    const msg = new Uint8Array(NLMSG_HDRLEN + payload.byteLength);
    const view = new DataView(msg.buffer);
    view.setUint32(0, msg.byteLength, true);
    view.setUint16(4, type, true);
    view.setUint16(6, flags | NLM_F_REQUEST, true);
    view.setUint32(8, seq, true);
    msg.set(payload, NLMSG_HDRLEN);
    this.libc.send(this.fd, msg);
    return seq;
  }

  /** Reads until the ACK, error or end of dump of `seq`; other messages of `seq` go to `onBody`. */
  private receive(seq: number, what: string, onBody: (body: Uint8Array) => void): void {
    for (;;) {
      const n = this.libc.recv(this.fd, this.buffer);
      const got = new DataView(this.buffer.buffer, 0, n);
      for (let at = 0; at + NLMSG_HDRLEN <= n;) {
        const len = got.getUint32(at, true);
        if (len < NLMSG_HDRLEN || at + len > n) break;
        if (got.getUint32(at + 8, true) === seq) {
          const type = got.getUint16(at + 4, true);
          if (type === NLMSG_ERROR) {
            const error = got.getInt32(at + NLMSG_HDRLEN, true);
            if (error !== 0) throw new NetlinkError(-error, what);
            return;
          }
          if (type === NLMSG_DONE) return;
          onBody(this.buffer.subarray(at + NLMSG_HDRLEN, at + len));
        }
        at += align4(len);
      }
    }
  }

  close(): void {
    this.libc.close(this.fd);
  }
}
