/**
 * Set members in one canonical text per ipset type, shared by both backends: `10.0.0.1`,
 * `10.0.0.0/24` (a host prefix is written as the address), `10.0.0.1,tcp:80`,
 * `10.0.0.0/24,eth0`. Both backends compare and store members in this form, so a set read back
 * from the kernel compares equal to the set the caller gave.
 */
import { formatIP, networkOf, parseIPLiteral } from "../address/index.js";
import { NetfilterError } from "./errors.js";
import type { IpVersion, SetType } from "./types.js";

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;

interface Parsed {
  text: string;
  /** First and last address as numbers (bigint), for overlap checks of net types. */
  lo: bigint;
  hi: bigint;
}

function v4(text: string, allowPrefix: boolean): Parsed | undefined {
  const m = V4.exec(text);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const b = Number(m[i]);
    if (b > 255 || (m[i]!.length > 1 && m[i]![0] === "0")) return undefined;
    n = n * 256 + b;
  }
  const len = m[5] === undefined ? 32 : Number(m[5]);
  if (len > 32 || len < 1 || (!allowPrefix && len !== 32)) return undefined;
  const size = 2 ** (32 - len);
  const net = n - (n % size);
  const addr = [net >>> 24, (net >>> 16) & 255, (net >>> 8) & 255, net & 255].join(".");
  return { text: len === 32 ? addr : `${addr}/${len}`, lo: BigInt(net), hi: BigInt(net + size - 1) };
}

function v6(text: string, allowPrefix: boolean): Parsed | undefined {
  const [a = "", l] = text.split("/");
  const ip = a.includes(":") ? parseIPLiteral(a) : null;
  if (ip?.family !== 6) return undefined;
  const len = l === undefined ? 128 : /^\d{1,3}$/.test(l) ? Number(l) : -1;
  if (len < 1 || len > 128 || (!allowPrefix && len !== 128)) return undefined;
  const lo = networkOf({ ip, prefix: len });
  const addr = formatIP(lo);
  return {
    text: len === 128 ? addr : `${addr}/${len}`,
    lo: lo.value,
    hi: lo.value | ((1n << BigInt(128 - len)) - 1n),
  };
}

function addr(text: string, family: IpVersion, allowPrefix: boolean): Parsed {
  const p = family === 4 ? v4(text, allowPrefix) : v6(text, allowPrefix);
  if (!p)
    throw new Error(`"${text}" is not an IPv${family} ${allowPrefix ? "address or prefix" : "address"}`);
  return p;
}

const IFNAME = /^[A-Za-z0-9_.:@-]{1,15}$/;
const PROTOS = ["tcp", "udp", "sctp", "udplite"];

export interface CanonicalMember {
  text: string;
  /** For net types: the interval and the interface, to refuse overlaps. */
  lo?: bigint;
  hi?: bigint;
  iface?: string;
}

export function canonicalMember(type: SetType, family: IpVersion, member: string): CanonicalMember {
  switch (type) {
    case "hash:ip":
      return { text: addr(member, family, false).text };
    case "hash:net": {
      const p = addr(member, family, true);
      return { text: p.text, lo: p.lo, hi: p.hi };
    }
    case "hash:ip,port": {
      const m = /^(.+),(?:(tcp|udp|sctp|udplite):)?(\d{1,5})$/.exec(member);
      if (!m || Number(m[3]) > 65535) throw new Error(`"${member}" is not ADDRESS,PROTO:PORT`);
      const proto = m[2] ?? "tcp";
      if (!PROTOS.includes(proto)) throw new Error(`"${proto}" is not tcp, udp, sctp or udplite`);
      return { text: `${addr(m[1]!, family, false).text},${proto}:${Number(m[3])}` };
    }
    case "hash:net,iface": {
      const i = member.lastIndexOf(",");
      const iface = member.slice(i + 1);
      if (i < 0 || !IFNAME.test(iface)) throw new Error(`"${member}" is not PREFIX,INTERFACE`);
      const p = addr(member.slice(0, i), family, true);
      return { text: `${p.text},${iface}`, lo: p.lo, hi: p.hi, iface };
    }
  }
}

/**
 * Canonical members, refusing bad ones and, for net types, overlapping ones: ipset matches
 * either of two overlapping prefixes, an nft interval set refuses the second. Refusing them on
 * both backends keeps the same calls meaning the same thing.
 */
export function canonicalMembers(
  name: string,
  type: SetType,
  family: IpVersion,
  members: Iterable<string>,
): Set<string> {
  const out = new Set<string>();
  const nets: CanonicalMember[] = [];
  for (const m of members) {
    let c: CanonicalMember;
    try {
      c = canonicalMember(type, family, m);
    } catch (e) {
      throw new NetfilterError("EINVAL", `set ${name} (${type}, IPv${family}): ${(e as Error).message}`);
    }
    if (out.has(c.text)) continue;
    out.add(c.text);
    if (c.lo !== undefined) nets.push(c);
  }
  nets.sort((a, b) =>
    a.iface === b.iface ? (a.lo! < b.lo! ? -1 : a.lo! > b.lo! ? 1 : 0) : a.iface! < b.iface! ? -1 : 1,
  );
  for (let i = 1; i < nets.length; i++) {
    const [a, b] = [nets[i - 1]!, nets[i]!];
    if (a.iface === b.iface && b.lo! <= a.hi!)
      throw new NetfilterError(
        "EINVAL",
        `set ${name} (${type}): members ${a.text} and ${b.text} overlap; an nft interval set cannot hold both (give the larger one only)`,
      );
  }
  return out;
}

/** The nft set declaration for an ipset type. */
export function nftSetSpec(type: SetType, family: IpVersion): { type: string; flags?: ["interval"] } {
  const a = family === 4 ? "ipv4_addr" : "ipv6_addr";
  switch (type) {
    case "hash:ip":
      return { type: a };
    case "hash:net":
      return { type: a, flags: ["interval"] };
    case "hash:ip,port":
      return { type: `${a} . inet_proto . inet_service` };
    case "hash:net,iface":
      return { type: `${a} . ifname`, flags: ["interval"] };
  }
}

/** A canonical member as an nft element key. */
export function nftKey(type: SetType, member: string): string[] {
  switch (type) {
    case "hash:ip":
    case "hash:net":
      return [member];
    case "hash:ip,port": {
      const [a = "", pp = ""] = member.split(",");
      const [proto = "", port = ""] = pp.split(":");
      return [a, proto, port];
    }
    case "hash:net,iface": {
      const i = member.lastIndexOf(",");
      return [member.slice(0, i), `"${member.slice(i + 1)}"`];
    }
  }
}

/** An nft element key as listed by the kernel, back to the canonical member. */
export function memberFromNftKey(type: SetType, family: IpVersion, key: readonly string[]): string {
  switch (type) {
    case "hash:ip":
    case "hash:net":
      return canonicalMember(type, family, key[0] ?? "").text;
    case "hash:ip,port":
      return `${key[0]},${key[1]}:${key[2]}`;
    case "hash:net,iface":
      return `${canonicalMember("hash:net", family, key[0] ?? "").text},${(key[1] ?? "").replace(/"/g, "")}`;
  }
}
