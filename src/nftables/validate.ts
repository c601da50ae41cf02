/**
 * Checks for every value that reaches nft's text syntax. nft has no escaping: a `"` cannot
 * appear inside a quoted string, and `;`, `#` or a newline end or comment out a command. So
 * values are refused rather than escaped, and the error names the field to fix.
 */
import { formatCIDR, formatIP, parseCIDRLiteral, parseIPLiteral, type IpFamily } from "../address/index.js";
import { ValidationError } from "./errors.js";
import { NFT_KEYWORDS } from "./keywords.js";
import { FAMILIES, type Family } from "./types.js";

/** Kernel limit for table, chain, set and object names (NFT_NAME_MAXLEN, including the NUL). */
export const MAX_NAME_BYTES = 255;
/** Kernel limit for comments (NFT_USERDATA_MAXLEN), as knftables counts it. */
export const MAX_COMMENT_BYTES = 128;
/** IFNAMSIZ - 1. */
export const MAX_IFNAME_BYTES = 15;

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_./-]*$/;
/** An element part nft reads as one word: addresses, prefixes, ranges, numbers, symbols. */
const BARE_VALUE_RE = /^[A-Za-z0-9_.:/*-]+$/;

function byteLength(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

function describe(value: unknown): string {
  const s = typeof value === "string" ? value : String(value);
  return JSON.stringify(s.length > 40 ? s.slice(0, 40) + "…" : s);
}

/** Table, chain, set, map, counter and flowtable names. */
export function validateName(field: string, name: unknown): string {
  if (typeof name !== "string" || name === "") throw new ValidationError(field, "must be a non-empty string");
  // A name that matches is ASCII, so its length is its size in bytes (no Buffer.byteLength on the
  // hot path of transactions with 100,000s of elements).
  const ok = NAME_RE.test(name);
  if ((ok ? name.length : byteLength(name)) > MAX_NAME_BYTES)
    throw new ValidationError(field, `${describe(name)} is longer than ${MAX_NAME_BYTES} bytes`);
  if (!ok)
    throw new ValidationError(
      field,
      `${describe(name)} may hold only letters, digits and _ . / -, and must start with a letter or _`,
    );
  if (NFT_KEYWORDS.has(name))
    throw new ValidationError(field, `${describe(name)} is an nft keyword and cannot be used as a name`);
  return name;
}

/**
 * Text that goes inside double quotes: no quote, backslash, newline, NUL or other control
 * character, and none of `; # { }`, which end, comment out or nest commands if a quote is ever
 * lost on the way.
 */
export function validateQuotable(field: string, value: unknown, maxBytes: number): string {
  if (typeof value !== "string") throw new ValidationError(field, "must be a string");
  if (!value.isWellFormed()) throw new ValidationError(field, "is not valid UTF-8");
  if (byteLength(value) > maxBytes)
    throw new ValidationError(field, `${describe(value)} is longer than ${maxBytes} bytes`);
  // eslint-disable-next-line no-control-regex
  const bad = /["\\;#{}\x00-\x1f\x7f]/.exec(value);
  if (bad)
    throw new ValidationError(
      field,
      `${describe(value)} contains ${JSON.stringify(bad[0])}, which nft cannot safely quote; remove it`,
    );
  return value;
}

export function validateComment(field: string, comment: unknown): string {
  return validateQuotable(field, comment, MAX_COMMENT_BYTES);
}

/**
 * Interface names as the kernel accepts them (and as libcni checks them); `wildcard` allows a
 * trailing `*`, which nft reads as a prefix match.
 */
export function validateIfname(field: string, name: unknown, wildcard = false): string {
  if (typeof name !== "string" || name === "") throw new ValidationError(field, "must be a non-empty string");
  if (byteLength(name) > MAX_IFNAME_BYTES)
    throw new ValidationError(field, `${describe(name)} is longer than ${MAX_IFNAME_BYTES} bytes`);
  if (name === "." || name === "..")
    throw new ValidationError(field, `${describe(name)} is not an interface name`);
  const body = wildcard && name.endsWith("*") ? name.slice(0, -1) : name;
  // eslint-disable-next-line no-control-regex
  if (/[\s/:"\\*;#{}\x00-\x1f\x7f]/.test(body) || !body.isWellFormed())
    throw new ValidationError(
      field,
      `${describe(name)} may not contain whitespace, / : " \\ * ; # { } or control characters`,
    );
  return name;
}

const FAMILY_OF: Record<"ipv4" | "ipv6", IpFamily> = { ipv4: 4, ipv6: 6 };

/**
 * A single IPv4 (dotted quad) or IPv6 address, returned in canonical form. An IPv4-mapped IPv6
 * address stays IPv6, as nft reads it.
 */
export function validateAddress(field: string, value: unknown, family?: "ipv4" | "ipv6"): string {
  const ip = typeof value === "string" ? parseIPLiteral(value) : null;
  if (!ip) throw new ValidationError(field, `${describe(value)} is not an IP address`);
  if (family && ip.family !== FAMILY_OF[family])
    throw new ValidationError(
      field,
      `${describe(value)} is not an ${family === "ipv4" ? "IPv4" : "IPv6"} address`,
    );
  return formatIP(ip);
}

/** An address prefix such as `10.0.0.0/8`, returned in canonical form (host bits kept as given). */
export function validatePrefix(field: string, value: unknown, family?: "ipv4" | "ipv6"): string {
  const cidr = typeof value === "string" ? parseCIDRLiteral(value) : null;
  if (!cidr) throw new ValidationError(field, `${describe(value)} is not an address prefix like 10.0.0.0/8`);
  if (family && cidr.ip.family !== FAMILY_OF[family])
    throw new ValidationError(
      field,
      `${describe(value)} is not an ${family === "ipv4" ? "IPv4" : "IPv6"} prefix`,
    );
  return formatCIDR(cidr);
}

export function validateInteger(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max)
    throw new ValidationError(field, `${describe(value)} must be an integer from ${min} to ${max}`);
  return value;
}

export function validatePort(field: string, value: unknown): number {
  return validateInteger(field, value, 0, 65535);
}

/**
 * One value of an element key or map value: a bare word of address/number/name characters, a
 * quoted string, or a verdict (`accept`, `drop`, `return`, `continue`, `jump NAME`, `goto NAME`).
 */
export function validateElementValue(field: string, value: unknown): string {
  if (typeof value !== "string" || value === "")
    throw new ValidationError(field, "must be a non-empty string");
  const bare = BARE_VALUE_RE.test(value);
  if ((bare ? value.length : byteLength(value)) > MAX_NAME_BYTES)
    throw new ValidationError(field, `${describe(value)} is longer than ${MAX_NAME_BYTES} bytes`);
  if (bare) return value;
  if (/^"[^"]*"$/.test(value)) {
    validateQuotable(field, value.slice(1, -1), MAX_NAME_BYTES);
    return value;
  }
  const verdict = /^(jump|goto) (\S+)$/.exec(value);
  if (verdict) {
    validateName(field, verdict[2]);
    return value;
  }
  throw new ValidationError(
    field,
    `${describe(value)} is not a value nft can take as one element part (a word, a "quoted" string or a verdict)`,
  );
}

/**
 * Rule text and type expressions come from the library user's code, but can still carry outside
 * values glued in by hand: refuse what would end the command, start a comment or open an
 * unbalanced quote or brace, so one rule can never become two.
 */
export function validateRuleText(field: string, text: unknown): string {
  if (typeof text !== "string" || text.trim() === "")
    throw new ValidationError(field, "must be non-empty text");
  if (!text.isWellFormed()) throw new ValidationError(field, "is not valid UTF-8");
  if (byteLength(text) > 65536) throw new ValidationError(field, "is longer than 64 KiB");
  // eslint-disable-next-line no-control-regex
  const bad = /[;#\\\x00-\x1f\x7f]/.exec(text);
  if (bad)
    throw new ValidationError(
      field,
      `${describe(text)} contains ${JSON.stringify(bad[0])}, which would end or change the command`,
    );
  let depth = 0;
  let quoted = false;
  for (const ch of text) {
    if (ch === '"') quoted = !quoted;
    else if (quoted) continue;
    else if (ch === "{" || ch === "[" || ch === "(") depth++;
    else if (ch === "}" || ch === "]" || ch === ")") {
      if (--depth < 0) break;
    }
  }
  if (quoted) throw new ValidationError(field, `${describe(text)} has an unterminated quote`);
  if (depth !== 0) throw new ValidationError(field, `${describe(text)} has unbalanced braces or brackets`);
  return text;
}

/** The family and table an instance is bound to (the real library and the fake alike). */
export function validateScope(family: unknown, table: unknown): { family: Family; table: string } {
  if (typeof family !== "string" || !(FAMILIES as readonly string[]).includes(family))
    throw new ValidationError("family", `${JSON.stringify(family)} is not one of ${FAMILIES.join(", ")}`);
  return { family: family as Family, table: validateName("table", table) };
}
