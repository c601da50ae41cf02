/**
 * DHCPv4 messages (RFC 2131) and the options cni-nft reads or sends (RFC 2132, RFC 3442
 * classless static routes, RFC 3396 long options split over several instances).
 */

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;
const MAGIC = 0x63825363;
const FIXED_LEN = 236;
/** RFC 2131: a client must accept 576-byte messages; BOOTP relays expect at least 300 bytes. */
const MIN_LEN = 300;

export const MessageType = {
  Discover: 1,
  Offer: 2,
  Request: 3,
  Decline: 4,
  Ack: 5,
  Nak: 6,
  Release: 7,
  Inform: 8,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const Option = {
  SubnetMask: 1,
  Router: 3,
  DomainNameServer: 6,
  HostName: 12,
  DomainName: 15,
  StaticRoute: 33,
  RequestedIP: 50,
  LeaseTime: 51,
  MessageType: 53,
  ServerId: 54,
  ParameterRequestList: 55,
  Message: 56,
  MaxMessageSize: 57,
  RenewalTime: 58,
  RebindingTime: 59,
  ClassId: 60,
  ClientId: 61,
  UserClass: 77,
  ClasslessStaticRoute: 121,
} as const;

export interface DhcpMessage {
  op: 1 | 2;
  xid: number;
  secs?: number;
  /** The broadcast bit (RFC 2131 figure 2): ask the server to broadcast its replies. */
  broadcast: boolean;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** Client hardware address, aa:bb:cc:dd:ee:ff. */
  chaddr: string;
  /** Options by code, in the order to send them; repeated instances already concatenated. */
  options: Map<number, Buffer>;
}

export class DhcpDecodeError extends Error {
  override readonly name = "DhcpDecodeError";
}

function ip4Bytes(s: string): number[] {
  const parts = s.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new RangeError(`not an IPv4 address: ${s}`);
  return parts;
}

export function ip4(buf: Buffer, off = 0): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

export function ip4Buffer(s: string): Buffer {
  return Buffer.from(ip4Bytes(s));
}

function macBytes(mac: string): number[] {
  const b = mac.split(":").map((h) => parseInt(h, 16));
  if (b.length !== 6 || b.some((x) => !Number.isInteger(x) || x < 0 || x > 255))
    throw new RangeError(`not a MAC address: ${mac}`);
  return b;
}

export function encode(m: DhcpMessage): Buffer {
  const optLen = [...m.options.values()].reduce(
    (n, v) => n + v.length + 2 * Math.ceil(v.length / 255 || 1),
    0,
  );
  const buf = Buffer.alloc(Math.max(MIN_LEN, FIXED_LEN + 4 + optLen + 1));
  buf[0] = m.op;
  buf[1] = 1; // Ethernet
  buf[2] = 6;
  buf.writeUInt32BE(m.xid >>> 0, 4);
  buf.writeUInt16BE(m.secs ?? 0, 8);
  buf.writeUInt16BE(m.broadcast ? 0x8000 : 0, 10);
  Buffer.from(ip4Bytes(m.ciaddr)).copy(buf, 12);
  Buffer.from(ip4Bytes(m.yiaddr)).copy(buf, 16);
  Buffer.from(ip4Bytes(m.siaddr)).copy(buf, 20);
  Buffer.from(ip4Bytes(m.giaddr)).copy(buf, 24);
  Buffer.from(macBytes(m.chaddr)).copy(buf, 28);
  buf.writeUInt32BE(MAGIC, FIXED_LEN);
  let off = FIXED_LEN + 4;
  for (const [code, value] of m.options) {
    // RFC 3396: values over 255 bytes go out as consecutive instances of the option.
    for (let i = 0; i === 0 || i < value.length; i += 255) {
      const part = value.subarray(i, i + 255);
      buf[off++] = code;
      buf[off++] = part.length;
      part.copy(buf, off);
      off += part.length;
    }
  }
  buf[off] = 255;
  return buf;
}

export function decode(buf: Buffer): DhcpMessage {
  if (buf.length < FIXED_LEN + 4) throw new DhcpDecodeError(`message too short (${buf.length} bytes)`);
  if (buf.readUInt32BE(FIXED_LEN) !== MAGIC) throw new DhcpDecodeError("no DHCP magic cookie");
  const op = buf[0];
  if (op !== 1 && op !== 2) throw new DhcpDecodeError(`bad op ${op}`);
  const options = new Map<number, Buffer>();
  let off = FIXED_LEN + 4;
  while (off < buf.length) {
    const code = buf[off++]!;
    if (code === 0) continue;
    if (code === 255) break;
    const len = buf[off++];
    if (len === undefined || off + len > buf.length)
      throw new DhcpDecodeError(`option ${code} runs past the end`);
    const v = buf.subarray(off, off + len);
    const prev = options.get(code);
    options.set(code, prev ? Buffer.concat([prev, v]) : Buffer.from(v));
    off += len;
  }
  const mac = [...buf.subarray(28, 34)].map((b) => b.toString(16).padStart(2, "0")).join(":");
  return {
    op,
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    broadcast: (buf.readUInt16BE(10) & 0x8000) !== 0,
    ciaddr: ip4(buf, 12),
    yiaddr: ip4(buf, 16),
    siaddr: ip4(buf, 20),
    giaddr: ip4(buf, 24),
    chaddr: mac,
    options,
  };
}

export function messageType(m: DhcpMessage): number | undefined {
  return m.options.get(Option.MessageType)?.[0];
}

export function u32Option(m: DhcpMessage, code: number): number | undefined {
  const v = m.options.get(code);
  return v && v.length >= 4 ? v.readUInt32BE(0) : undefined;
}

export function ipListOption(m: DhcpMessage, code: number): string[] {
  const v = m.options.get(code);
  const out: string[] = [];
  for (let i = 0; v && i + 4 <= v.length; i += 4) out.push(ip4(v, i));
  return out;
}

export function maskToPrefix(mask: string): number {
  const n = ip4Buffer(mask).readUInt32BE(0);
  const prefix = 32 - Math.log2((~n >>> 0) + 1);
  if (!Number.isInteger(prefix)) throw new DhcpDecodeError(`subnet mask ${mask} is not contiguous`);
  return prefix;
}

export interface DhcpRoute {
  dst: string;
  gw: string;
}

/** RFC 3442 option 121: (width, significant octets of the destination, router)*. */
export function classlessRoutes(v: Buffer): DhcpRoute[] {
  const routes: DhcpRoute[] = [];
  let i = 0;
  while (i < v.length) {
    const width = v[i++]!;
    if (width > 32) throw new DhcpDecodeError(`option 121: prefix length ${width}`);
    const sig = Math.ceil(width / 8);
    if (i + sig + 4 > v.length) throw new DhcpDecodeError("option 121 truncated");
    const dst = Buffer.alloc(4);
    v.copy(dst, 0, i, i + sig);
    i += sig;
    routes.push({ dst: `${ip4(dst)}/${width}`, gw: ip4(v, i) });
    i += 4;
  }
  return routes;
}

/** Option 33: (destination, router)* with the destination's classful mask (RFC 2132 5.8). */
export function staticRoutes(v: Buffer): DhcpRoute[] {
  const routes: DhcpRoute[] = [];
  for (let i = 0; i + 8 <= v.length; i += 8) {
    const first = v[i]!;
    const prefix = first < 128 ? 8 : first < 192 ? 16 : 24;
    routes.push({ dst: `${ip4(v, i)}/${prefix}`, gw: ip4(v, i + 4) });
  }
  return routes;
}
