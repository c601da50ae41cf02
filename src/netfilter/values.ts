/**
 * Values of the iptables rule language turned into nft text: addresses (with dotted masks),
 * ports and ranges, interface names with `+`, marks with masks, numbers. Each parser refuses
 * what it cannot read by throwing a plain Error with the reason; the translator names the rule.
 */
import { formatCIDR, formatIP, networkOf, parseIPLiteral, prefixOfNetmask } from "../address/index.js";
import type { IpVersion } from "./types.js";

/** An address or prefix as nft writes it (network address, no /32 or /128), or undefined for "any". */
export function parseAddress(text: string, family: IpVersion): string | undefined {
  const [addr = "", mask] = text.split("/");
  const ip = parseIPLiteral(addr);
  if (!ip) throw new Error(`"${text}" is not an IP address (host names are not resolved)`);
  if (ip.family !== family) throw new Error(`"${text}" is not an IPv${family} address`);
  const bits = family === 4 ? 32 : 128;
  let len = bits;
  if (mask !== undefined) {
    const dotted = family === 4 ? parseIPLiteral(mask) : null;
    if (/^\d{1,3}$/.test(mask)) len = Number(mask);
    else if (dotted?.family === 4) {
      const l = prefixOfNetmask(dotted);
      if (l === undefined) throw new Error(`"${mask}" is not a contiguous netmask`);
      len = l;
    } else throw new Error(`"${mask}" is not a prefix length or netmask`);
    if (len > bits) throw new Error(`prefix length ${len} is longer than ${bits}`);
  }
  if (len === 0) return undefined;
  if (len === bits) return formatIP(ip);
  return formatCIDR({ ip: networkOf({ ip, prefix: len }), prefix: len });
}

/** `eth0` → `"eth0"`, `veth+` → `"veth*"`, `+` → undefined (any interface). */
export function parseInterface(text: string): string | undefined {
  if (text === "+") return undefined;
  const wildcard = text.endsWith("+");
  const base = wildcard ? text.slice(0, -1) : text;
  // eslint-disable-next-line no-control-regex
  if (base.length === 0 || Buffer.byteLength(base) > 15 || /[\s/"\\*;#{}'\x00-\x1f\x7f]/.test(base))
    throw new Error(`"${text}" is not an interface name`);
  return `"${base}${wildcard ? "*" : ""}"`;
}

const PORT_NAMES: Record<string, number> = {
  ssh: 22,
  domain: 53,
  http: 80,
  https: 443,
  bootps: 67,
  bootpc: 68,
  ntp: 123,
  smtp: 25,
  ftp: 21,
};

export function parsePort(text: string): number {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : PORT_NAMES[text];
  if (n === undefined || n > 65535) throw new Error(`"${text}" is not a port number`);
  return n;
}

/** `22`, `1024:`, `:1023`, `1000:2000` → `22`, `1024-65535`, `0-1023`, `1000-2000`. */
export function parsePortRange(text: string): string {
  if (!text.includes(":")) return String(parsePort(text));
  const [a = "", b = ""] = text.split(":");
  const lo = a === "" ? 0 : parsePort(a);
  const hi = b === "" ? 65535 : parsePort(b);
  if (lo > hi) throw new Error(`port range "${text}" is empty`);
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

/** A 32-bit value in decimal or hex. */
export function parseU32(text: string): number {
  if (!/^(0x[0-9a-fA-F]{1,8}|\d{1,10})$/.test(text)) throw new Error(`"${text}" is not a 32-bit number`);
  const n = Number(text);
  if (n > 0xffffffff) throw new Error(`"${text}" is larger than 32 bits`);
  return n;
}

export function hex(n: number): string {
  return "0x" + (n >>> 0).toString(16).padStart(8, "0");
}

/** `value[/mask]`. */
export function parseMarkMask(text: string): { value: number; mask: number | undefined } {
  const [v = "", m] = text.split("/");
  return { value: parseU32(v), mask: m === undefined ? undefined : parseU32(m) };
}

/** A comma list, refusing empty items. */
export function commaList(text: string): string[] {
  const items = text.split(",");
  if (items.some((s) => s === "")) throw new Error(`"${text}" has an empty item`);
  return items;
}

/** `{ a, b }` for several values, `a` for one. */
export function setOf(items: string[]): string {
  return items.length === 1 ? items[0]! : `{ ${items.join(", ")} }`;
}
