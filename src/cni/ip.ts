/** Small IP helpers for CNI plugins: parsing/formatting (via ipaddr.js) and bigint arithmetic. */
import ipaddr from "ipaddr.js";

export interface IP {
  family: 4 | 6;
  /** The address as an unsigned integer (32 or 128 bits). */
  value: bigint;
}

export interface CIDR {
  /** The address as written (host bits kept). */
  ip: IP;
  prefix: number;
}

export function bits(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

/** Parses an IP address (dotted-quad IPv4 or IPv6; IPv4-mapped IPv6 becomes IPv4 like Go's To4). */
export function parseIP(s: string): IP | null {
  if (typeof s !== "string") return null;
  if (ipaddr.IPv4.isValidFourPartDecimal(s)) {
    const o = ipaddr.IPv4.parse(s).octets;
    return { family: 4, value: o.reduce((a, b) => (a << 8n) | BigInt(b), 0n) };
  }
  if (!s.includes(":") || s.includes("%") || !ipaddr.IPv6.isValid(s)) return null;
  const a = ipaddr.IPv6.parse(s);
  if (a.isIPv4MappedAddress()) return parseIP(a.toIPv4Address().toString());
  return { family: 6, value: a.parts.reduce((acc, p) => (acc << 16n) | BigInt(p), 0n) };
}

/** Parses "addr/prefix" (host bits allowed, like Go's net.ParseCIDR). */
export function parseCIDR(s: string): CIDR | null {
  if (typeof s !== "string") return null;
  const i = s.lastIndexOf("/");
  if (i < 0) return null;
  const ip = parseIP(s.slice(0, i));
  const p = s.slice(i + 1);
  if (!ip || !/^\d{1,3}$/.test(p)) return null;
  const prefix = Number(p);
  // An IPv4-mapped IPv6 CIDR keeps IPv6 prefix semantics in Go; we refuse it as unusual input.
  if (prefix > bits(ip.family) || (ip.family === 4 && s.slice(0, i).includes(":"))) return null;
  return { ip, prefix };
}

export function formatIP(ip: IP): string {
  if (ip.family === 4) {
    const v = ip.value;
    return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join(".");
  }
  const parts: number[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) parts.push(Number((ip.value >> s) & 0xffffn));
  return new ipaddr.IPv6(parts).toRFC5952String();
}

export function formatCIDR(c: CIDR): string {
  return `${formatIP(c.ip)}/${c.prefix}`;
}

function maskOf(family: 4 | 6, prefix: number): bigint {
  const b = BigInt(bits(family));
  const all = (1n << b) - 1n;
  return all ^ ((1n << (b - BigInt(prefix))) - 1n);
}

/** The network address of a CIDR. */
export function networkOf(c: CIDR): IP {
  return { family: c.ip.family, value: c.ip.value & maskOf(c.ip.family, c.prefix) };
}

/** The last address of a CIDR (broadcast for IPv4). */
export function lastOf(c: CIDR): IP {
  const host = ((1n << BigInt(bits(c.ip.family) - c.prefix)) - 1n) & ((1n << BigInt(bits(c.ip.family))) - 1n);
  return { family: c.ip.family, value: (c.ip.value & maskOf(c.ip.family, c.prefix)) | host };
}

export function contains(c: CIDR, ip: IP): boolean {
  return ip.family === c.ip.family && (ip.value & maskOf(ip.family, c.prefix)) === networkOf(c).value;
}

export function ipEqual(a: IP, b: IP): boolean {
  return a.family === b.family && a.value === b.value;
}

export function ipAdd(ip: IP, n: bigint): IP {
  const max = (1n << BigInt(bits(ip.family))) - 1n;
  let v = ip.value + n;
  if (v < 0n) v = max;
  if (v > max) v = 0n;
  return { family: ip.family, value: v };
}

export function isIP(s: string): boolean {
  return parseIP(s) !== null;
}

export function isCIDR(s: string): boolean {
  return parseCIDR(s) !== null;
}
