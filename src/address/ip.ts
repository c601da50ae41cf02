/**
 * IP addresses and CIDRs, parsed and printed by ipaddr.js. Addresses are also numbers (bigint) for
 * the arithmetic IPAM needs. Parsing follows Go's net package where plugins must agree with
 * upstream: dotted-quad IPv4 only, IPv4-mapped IPv6 counts as IPv4 (Go's To4), host bits are kept
 * in a CIDR. Printing is canonical: IPv6 in RFC 5952 form, what iproute2, nft and iptables print.
 */
import ipaddr from "ipaddr.js";

export type IpFamily = 4 | 6;

export interface IP {
  family: IpFamily;
  /** The address as an unsigned integer (32 or 128 bits). */
  value: bigint;
}

export interface CIDR {
  /** The address as written (host bits kept). */
  ip: IP;
  prefix: number;
}

export function bits(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

function fromBytes(family: IpFamily, bytes: number[]): IP {
  return { family, value: bytes.reduce((a, b) => (a << 8n) | BigInt(b), 0n) };
}

function toBytes(ip: IP): number[] {
  const n = bits(ip.family) / 8;
  const out: number[] = [];
  for (let i = n - 1; i >= 0; i--) out.push(Number((ip.value >> BigInt(i * 8)) & 255n));
  return out;
}

/** The address's bytes in network order (4 or 16), as netlink and the kernel take it. */
export function bytesOf(ip: IP): Uint8Array {
  return Uint8Array.from(toBytes(ip));
}

/** Parses an IP address (dotted-quad IPv4 or IPv6; IPv4-mapped IPv6 becomes IPv4 like Go's To4). */
export function parseIP(s: string): IP | null {
  if (typeof s !== "string") return null;
  if (ipaddr.IPv4.isValidFourPartDecimal(s)) return fromBytes(4, ipaddr.IPv4.parse(s).toByteArray());
  if (!s.includes(":") || s.includes("%") || !ipaddr.IPv6.isValid(s)) return null;
  const a = ipaddr.IPv6.parse(s);
  if (a.isIPv4MappedAddress()) return fromBytes(4, a.toIPv4Address().toByteArray());
  return fromBytes(6, a.toByteArray());
}

/**
 * Parses an address as nft and iptables read it: like {@link parseIP}, but an IPv4-mapped IPv6
 * address stays IPv6 (`ip6 saddr ::ffff:10.0.0.1` is an IPv6 match there).
 */
export function parseIPLiteral(s: string): IP | null {
  if (typeof s === "string" && s.includes(":") && !s.includes("%") && ipaddr.IPv6.isValid(s))
    return fromBytes(6, ipaddr.IPv6.parse(s).toByteArray());
  return parseIP(s);
}

/** The prefix length of an IPv4 netmask (255.255.255.0 -> 24); undefined when it is not contiguous. */
export function prefixOfNetmask(mask: IP): number | undefined {
  const all = (1n << BigInt(bits(mask.family))) - 1n;
  for (let prefix = 0; prefix <= bits(mask.family); prefix++) {
    const netmask = all ^ hostMask(mask.family, prefix);
    if (mask.value === netmask) return prefix;
  }
  return undefined;
}

function parseWith(s: string, parse: (addr: string) => IP | null): CIDR | null {
  if (typeof s !== "string") return null;
  const i = s.lastIndexOf("/");
  if (i < 0) return null;
  const ip = parse(s.slice(0, i));
  const p = s.slice(i + 1);
  if (!ip || !/^\d{1,3}$/.test(p)) return null;
  const prefix = Number(p);
  // An IPv4-mapped IPv6 CIDR keeps IPv6 prefix semantics in Go; we refuse it as unusual input.
  if (prefix > bits(ip.family) || (ip.family === 4 && s.slice(0, i).includes(":"))) return null;
  return { ip, prefix };
}

/** Parses "addr/prefix" (host bits allowed, like Go's net.ParseCIDR). */
export function parseCIDR(s: string): CIDR | null {
  return parseWith(s, parseIP);
}

/** Parses "addr/prefix" as nft and iptables read it: an IPv4-mapped IPv6 prefix stays IPv6. */
export function parseCIDRLiteral(s: string): CIDR | null {
  return parseWith(s, parseIPLiteral);
}

export function formatIP(ip: IP): string {
  return ipaddr.fromByteArray(toBytes(ip)).toString();
}

export function formatCIDR(c: CIDR): string {
  return `${formatIP(c.ip)}/${c.prefix}`;
}

function hostMask(family: IpFamily, prefix: number): bigint {
  return (1n << BigInt(bits(family) - prefix)) - 1n;
}

/** The network address of a CIDR. */
export function networkOf(c: CIDR): IP {
  return { family: c.ip.family, value: c.ip.value & ~hostMask(c.ip.family, c.prefix) };
}

/** The last address of a CIDR (broadcast for IPv4). */
export function lastOf(c: CIDR): IP {
  return { family: c.ip.family, value: networkOf(c).value | hostMask(c.ip.family, c.prefix) };
}

export function contains(c: CIDR, ip: IP): boolean {
  return ip.family === c.ip.family && networkOf({ ip, prefix: c.prefix }).value === networkOf(c).value;
}

export function ipEqual(a: IP, b: IP): boolean {
  return a.family === b.family && a.value === b.value;
}

/** `ip + n`, wrapping around at either end of the family's space. */
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

// The helpers below take the strings results carry ("10.88.0.5/24", "fd00::5") and return
// canonical strings; they are for values already validated (a result, a parsed config).

function mustParse(cidrOrAddr: string): CIDR {
  const c = cidrOrAddr.includes("/") ? parseCIDR(cidrOrAddr) : parseIP(cidrOrAddr);
  if (c === null) throw new TypeError(`not an IP address or CIDR: ${JSON.stringify(cidrOrAddr)}`);
  return "prefix" in c ? c : { ip: c, prefix: bits(c.family) };
}

/**
 * Address family of an IP or CIDR string, as libcni decides it (IPv4-mapped counts as 4); text
 * that is neither counts by whether it has a colon.
 */
export function familyOf(cidrOrAddr: string): IpFamily {
  const addr = cidrOrAddr.split("/")[0] ?? "";
  return parseIP(addr)?.family ?? (addr.includes(":") ? 6 : 4);
}

/** `10.88.0.5/24` -> `10.88.0.5`. */
export function addressOf(cidr: string): string {
  return formatIP(mustParse(cidr).ip);
}

/** `10.88.0.5/24` -> `10.88.0.0/24` (and the same for IPv6). */
export function subnetOf(cidr: string): string {
  const c = mustParse(cidr);
  return formatCIDR({ ip: networkOf(c), prefix: c.prefix });
}

/** `10.88.0.5/24` (or `10.88.0.5`) -> `10.88.0.5/32`; `/128` for IPv6. */
export function hostPrefix(cidrOrAddr: string): string {
  const { ip } = mustParse(cidrOrAddr);
  return `${formatIP(ip)}/${bits(ip.family)}`;
}

/** The first address after the network address, as upstream computes a missing gateway. */
export function gatewayFor(cidr: string): string {
  return formatIP(ipAdd(networkOf(mustParse(cidr)), 1n));
}

export function defaultRoute(family: IpFamily): string {
  return family === 4 ? "0.0.0.0/0" : "::/0";
}
