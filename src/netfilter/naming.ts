/**
 * Names the manager writes: the owner's prefix, chain names per backend, set names, and the
 * marker every rule carries in its comment so a restarted owner recognises its own rules.
 */
import { createHash } from "node:crypto";
import { NetfilterError } from "./errors.js";
import type { IpVersion, TableName } from "./types.js";

/** iptables' chain name limit (XT_EXTENSION_MAXNAMELEN - 1). */
export const MAX_IPTABLES_CHAIN = 28;
/** ipset's set name limit (IPSET_MAXNAMELEN - 1). */
export const MAX_IPSET_NAME = 31;

const OWNER_RE = /^[A-Za-z][A-Za-z0-9_-]{0,15}$/;
const CHAIN_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,27}$/;
const RESERVED = [
  "ACCEPT",
  "DROP",
  "RETURN",
  "QUEUE",
  "REJECT",
  "LOG",
  "DNAT",
  "SNAT",
  "MASQUERADE",
  "REDIRECT",
  "MARK",
  "CONNMARK",
  "CT",
  "NOTRACK",
  "CHECKSUM",
];

export function validateOwner(owner: unknown): string {
  if (typeof owner !== "string" || !OWNER_RE.test(owner))
    throw new NetfilterError(
      "EINVAL",
      `owner: ${JSON.stringify(owner)} must be a letter, then up to 15 letters, digits, _ or -`,
    );
  return owner;
}

export function validateChainName(chain: unknown): string {
  if (typeof chain !== "string" || !CHAIN_RE.test(chain))
    throw new NetfilterError(
      "EINVAL",
      `chain: ${JSON.stringify(chain)} must be up to 28 letters, digits, _ . -`,
    );
  if (RESERVED.includes(chain)) throw new NetfilterError("EINVAL", `chain: ${chain} is the name of a target`);
  return chain;
}

/** nft: one table per family for the owner; chains carry the iptables table they stand for. */
export function nftChainName(table: TableName, chain: string): string {
  return `${table}-${chain}`;
}

/** iptables: the owner's chain, `owner-chain`, wrapped as Neutron does. */
export function iptablesChainName(owner: string, chain: string): string {
  const name = `${owner}-${chain}`;
  if (name.length > MAX_IPTABLES_CHAIN)
    throw new NetfilterError(
      "EINVAL",
      `chain: ${name} is longer than iptables' ${MAX_IPTABLES_CHAIN} characters (shorten the chain or the owner)`,
    );
  return name;
}

/** ipset names are global in a network namespace: the owner and the family make them unique. */
export function ipsetName(owner: string, family: IpVersion, set: string): string {
  const name = `${owner}-${family === 4 ? "v4" : "v6"}-${set}`;
  if (name.length > MAX_IPSET_NAME)
    throw new NetfilterError(
      "EINVAL",
      `set: ${name} is longer than ipset's ${MAX_IPSET_NAME} characters (shorten the set or the owner)`,
    );
  return name;
}

export const MARKER_PREFIX = "nfm:";
const MARKER_RE = /(?:^| )nfm:([0-9a-f]{12})$/;

/** The identity of a rule: what it is, where it is. Equal rules in one chain share it. */
export function ruleKey(parts: readonly string[]): string {
  return createHash("sha1").update(parts.join("\0")).digest("hex").slice(0, 12);
}

/** The comment a rule carries: the caller's, then the marker. */
export function markedComment(comment: string | undefined, key: string): string {
  return comment ? `${comment} ${MARKER_PREFIX}${key}` : `${MARKER_PREFIX}${key}`;
}

/** The key in a comment read back from the kernel, or undefined for a rule the manager did not write. */
export function keyFromComment(comment: string | undefined): string | undefined {
  return comment === undefined ? undefined : MARKER_RE.exec(comment)?.[1];
}
