/**
 * The layout of the nftables backend's table (firewall_nftables.ts), `inet cni_nft_firewall`:
 *
 *   chain forward    hook forward, priority filter - 10, policy accept:
 *                      jump isolation; jump admin;
 *                      traffic of container addresses (sets containers4/containers6): set the
 *                      accept mark bit(s), then accept (replies to a container only when
 *                      established or related, as upstream's iptables rules)
 *   chain admin      the operator's: created when missing, never flushed
 *   chain isolation  ingressPolicy same-bridge / isolated, from three sets:
 *                      iifname . oifname @isolated_pairs drop   (isolated: bridge to itself)
 *                      iifname . oifname @bridge_pairs return   (same bridge)
 *                      iifname @bridges oifname @bridges drop   (bridge to another bridge)
 *
 * A counter named after the mark the forward rules set tells an ADD's fast path whether the
 * rules were written for its mark. Where this is written from: the accept rules of an
 * attachment (firewall_nftables.ts) and a bridge's isolation (firewall_nftables_isolation.ts).
 */
import { OWNERS_SET } from "../../../src/hoststate/nft_owners.js";
import {
  isNotFound,
  type Element,
  type Interface,
  type SkeletonChain,
  type Transaction,
} from "../../../src/nftables/index.js";
import { familyOf } from "./firewall_backend.js";
import { markHex } from "./firewall_host_forward.js";

export const NFT_TABLE = "cni_nft_firewall";
export const NFT_PRIORITY = "filter - 10";
/** One lock for every writer of the table (accept rules and isolation). */
export const NFT_LOCK_FILE = "/run/cni-nft-firewall-nft.lock";
export const SETS = { 4: "containers4", 6: "containers6" } as const;

/** The address element of `ip` (no prefix length), with its owner's comment when given. */
export function addressElement(ip: string, comment?: string): Element {
  const bare = ip.split("/")[0]!;
  return { kind: "element", set: SETS[familyOf(bare)], key: [bare], ...(comment ? { comment } : {}) };
}

const MARK_PREFIX = "mark_";

export function markCounter(mark: number): string {
  return `${MARK_PREFIX}${markHex(mark)}`;
}

/** The rules of the table's own chains, in order (`admin` is the operator's: never written). */
export function skeletonRules(mark: number): SkeletonChain[] {
  const m = markHex(mark);
  return [
    {
      chain: "isolation",
      rules: [
        "iifname . oifname @isolated_pairs drop",
        "iifname . oifname @bridge_pairs return",
        "iifname @bridges oifname @bridges drop",
      ],
    },
    {
      chain: "forward",
      rules: [
        "jump isolation",
        "jump admin",
        ...(["ip", "ip6"] as const).flatMap((ip) => {
          const set = SETS[ip === "ip" ? 4 : 6];
          return [
            `${ip} daddr @${set} ct state established,related meta mark set meta mark | ${m} accept`,
            `${ip} saddr @${set} meta mark set meta mark | ${m} accept`,
          ];
        }),
      ],
    },
  ];
}

/**
 * Flushes the chains and writes their rules: every ADD does, so an ADD after `nft flush table`
 * (sets and chains kept, rules gone) puts them back; a missing chain makes it ENOENT.
 */
export function writeSkeletonRules(tx: Transaction, mark: number): void {
  for (const { chain, rules } of skeletonRules(mark)) {
    tx.flush({ kind: "chain", name: chain });
    for (const rule of rules) tx.add({ kind: "rule", chain, rule });
  }
}

/**
 * The counters naming another mark than `mark` ([] without the table): the full path deletes
 * them with the rules it rewrites, so a later ADD with the old mark rewrites them again.
 */
export async function otherMarks(nft: Interface, mark: number): Promise<string[]> {
  try {
    const names = (await nft.listCounters()).map((c) => c.name);
    return names.filter((n) => n.startsWith(MARK_PREFIX) && n !== markCounter(mark));
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}

/**
 * The table, its chains and sets, and the forward chain's rules (rewritten: it is ours);
 * `stale`: counters of other marks, deleted.
 */
export function writeTable(tx: Transaction, mark: number, stale: readonly string[]): void {
  tx.add({
    kind: "table",
    comment: "cni-nft firewall plugin: forward accept for containers, bridge isolation",
  });
  // Names the mark the rules below set: an ADD's fast path touches it and so fails (ENOENT)
  // when the rules were written for another mark, which makes it rewrite them.
  tx.add({ kind: "counter", name: markCounter(mark), comment: "the accept mark of the forward rules" });
  for (const name of stale) tx.delete({ kind: "counter", name });
  tx.add({
    kind: "set",
    name: SETS[4],
    type: "ipv4_addr",
    comment: "container addresses (comment: owner)",
  });
  tx.add({
    kind: "set",
    name: SETS[6],
    type: "ipv6_addr",
    comment: "container addresses (comment: owner)",
  });
  tx.add({
    kind: "set",
    name: "bridges",
    type: "ifname",
    comment: "bridges with ingressPolicy same-bridge or isolated",
  });
  tx.add({
    kind: "set",
    name: OWNERS_SET,
    type: "ifname . ifname",
    comment: "owner tag . address tag, one per address (comment: owner)",
  });
  tx.add({ kind: "set", name: "bridge_pairs", type: "ifname . ifname" });
  tx.add({ kind: "set", name: "isolated_pairs", type: "ifname . ifname" });
  tx.add({ kind: "chain", name: "admin", comment: "operator rules, never flushed by cni-nft" });
  tx.add({ kind: "chain", name: "isolation" });
  tx.add({
    kind: "chain",
    name: "forward",
    type: "filter",
    hook: "forward",
    priority: NFT_PRIORITY,
    policy: "accept",
  });
  writeSkeletonRules(tx, mark);
}
