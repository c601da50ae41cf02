/**
 * The layout of cni-nft's masquerade table, `inet cni_nft_masquerade`: per attachment only
 * elements of hash maps keyed by the container's exact address, and no verdict anywhere.
 *
 *   masq4 (ipv4_addr : counter):  <container address> : masq4-<sha(subnet)>   (masq6 for IPv6)
 *   masq4-<sha(subnet)>: a counter, and a base chain (nat, postrouting, srcnat) of the same name:
 *       ip saddr <subnet> ip daddr != <subnet> ip daddr != 224.0.0.0/4
 *         counter name ip saddr map @masq4 masquerade
 *   owners: one `owner tag . element tag` element per element (src/hoststate/nft_owners.ts)
 *
 * `counter name ... map` ends the rule when the source is not in the map, so the subnet's rule
 * masquerades exactly what upstream's per-container rule `ip saddr <ip> ip daddr != <subnet>
 * masquerade` does, at one lookup per subnet whatever the number of containers. No verdict map:
 * the kernel validates every jump of every verdict map of the table on each commit that adds a
 * rule (measured with portmap's previous layout, docs/portmap.md), which made ADD O(containers).
 * While an element names a subnet's counter nft refuses to delete it (EBUSY), which tells a DEL
 * whether the subnet's chain is still used.
 */
import { nftOwnerComment, sha512Hex, type Attachment } from "../cni/attachment.js";
import { declareOwners, writeOwned } from "../hoststate/nft_owners.js";
import { concat, prefix, type Element, type SkeletonChain, type Transaction } from "../nftables/index.js";
import { addressOf, familyOf, subnetOf } from "../address/index.js";
import type { MasqSpec } from "./ipmasq.js";

export const MASQ_TABLE = "cni_nft_masquerade";

type Family = 4 | 6;
const FAMILIES = [4, 6] as const;
const ipx = (f: Family): "ip" | "ip6" => (f === 4 ? "ip" : "ip6");

/** The object map of a family's container addresses (value: the subnet's counter). */
export const masqMap = (f: Family): string => `masq${f}`;

/** The base chain and counter (same name) that masquerade what containers of `subnet` send outside it. */
export function subnetChain(f: Family, subnet: string): string {
  return `masq${f}-${sha512Hex(subnet).slice(0, 12)}`;
}

export interface SubnetChain {
  family: Family;
  chain: string;
  subnet: string;
}

/** What one attachment should have: its elements (with owner comment) and their subnets' chains. */
export interface MasqDesired {
  elements: Element[];
  chains: SubnetChain[];
}

export function desired(a: Attachment, s: MasqSpec): MasqDesired {
  const comment = nftOwnerComment(a);
  const elements = new Map<string, Element>();
  const chains = new Map<string, SubnetChain>();
  for (const x of s.addresses) {
    const family = familyOf(x);
    const subnet = subnetOf(x);
    const chain = subnetChain(family, subnet);
    chains.set(chain, { family, chain, subnet });
    const key = addressOf(x);
    elements.set(`${family} ${key}`, {
      kind: "element",
      map: masqMap(family),
      key: [key],
      value: [chain],
      comment,
    });
  }
  return { elements: [...elements.values()], chains: [...chains.values()] };
}

export function subnetChainRules(s: SubnetChain): SkeletonChain {
  const ip = ipx(s.family);
  const multicast = s.family === 4 ? "224.0.0.0/4" : "ff00::/8";
  const rule = concat(
    ip,
    "saddr",
    prefix(s.subnet),
    ip,
    "daddr !=",
    prefix(s.subnet),
    ip,
    `daddr != ${multicast} counter name`,
    ip,
    `saddr map @${masqMap(s.family)} masquerade`,
  );
  return { chain: s.chain, rules: [rule] };
}

/** Table, maps and owners set: what the fast transaction assumes. */
export function declareSkeleton(tx: Transaction): void {
  tx.add({ kind: "table", comment: "IP masquerade (cni-nft): container address to its subnet's counter" });
  for (const f of FAMILIES)
    tx.add({ kind: "map", name: masqMap(f), type: `${f === 4 ? "ipv4_addr" : "ipv6_addr"} : counter` });
  declareOwners(tx);
}

/**
 * A subnet's counter and base chain, declared and rewritten: the same text for every container
 * of the subnet, so an ADD after `nft flush table` or `nft flush chain` repairs its subnet.
 */
export function writeSubnetChain(tx: Transaction, s: SubnetChain): void {
  tx.add({
    kind: "counter",
    name: s.chain,
    comment: `masquerade from ${s.subnet}, named by ${masqMap(s.family)}`,
  });
  tx.add({ kind: "chain", name: s.chain, type: "nat", hook: "postrouting", priority: "srcnat" });
  tx.flush({ kind: "chain", name: s.chain });
  for (const rule of subnetChainRules(s).rules) tx.add({ kind: "rule", chain: s.chain, rule });
}

/**
 * One attachment's part of an ADD: its subnets first (elements name their counters), then each
 * element with its owner element; the keys in `recorded` (an earlier ADD's) asserted as its own.
 */
export function ownTransaction(
  tx: Transaction,
  owner: string,
  want: MasqDesired,
  recorded: ReadonlySet<string> = new Set(),
): void {
  for (const s of want.chains) writeSubnetChain(tx, s);
  for (const e of want.elements) writeOwned(tx, e, owner, recorded);
}
