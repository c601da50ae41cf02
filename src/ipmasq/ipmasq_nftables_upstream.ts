/**
 * Upstream's nftables masquerade layout, which was also cni-nft's before its own table: table
 * `inet cni_plugins_masquerade`, base chain `postrouting` (multicast returns, then `goto
 * masq_checks`), and in `masq_checks` one rule per container address whose comment starts with
 * the owner hash. Upstream's plugins keep writing it (their ADD flushes and rewrites
 * `postrouting`, appends to `masq_checks` and never flushes it; DEL and GC delete rules by
 * handle, found by comment). cni-nft never writes it any more: it reads it to CHECK and to DEL or
 * GC what is there for its attachments, deleting only rules whose comment is the attachment's.
 */
import { nftOwnerHash, type Attachment } from "../cni/attachment.js";
import { addressOf } from "../address/index.js";
import {
  isNotFound,
  missingRules,
  type Interface,
  type Rule,
  type SkeletonChain,
} from "../nftables/index.js";

export const UPSTREAM_MASQ_TABLE = "cni_plugins_masquerade";
export const UPSTREAM_MASQ_CHAIN = "masq_checks";

/** The shared rules as upstream writes them: multicast is never masqueraded. */
const UPSTREAM_SKELETON: SkeletonChain[] = [
  {
    chain: "postrouting",
    rules: ["ip daddr 224.0.0.0/4 return", "ip6 daddr ff00::/8 return", `goto ${UPSTREAM_MASQ_CHAIN}`],
  },
];

async function rulesOrNone(nft: Interface, chain: string, text = true): Promise<Rule[]> {
  try {
    return await nft.listRules(chain, { text });
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}

/** Handles of `masq_checks` rules whose comment `match`es ([] when the table is not there). */
async function handles(nft: Interface, match: (comment: string) => boolean): Promise<number[]> {
  return (await rulesOrNone(nft, UPSTREAM_MASQ_CHAIN, false)).flatMap((r) =>
    r.comment !== undefined && r.handle !== undefined && match(r.comment) ? [r.handle] : [],
  );
}

/**
 * Deletes the rules of `masq_checks` whose comment `match`es: one listing of the chain (its
 * table holds only rules, so the cost is that of the rule-based containers still there).
 */
export async function deleteUpstreamRules(
  nft: Interface,
  match: (comment: string) => boolean,
): Promise<void> {
  const found = await handles(nft, match);
  if (found.length === 0) return;
  const tx = nft.newTransaction();
  for (const handle of found) tx.delete({ kind: "rule", chain: UPSTREAM_MASQ_CHAIN, rule: "", handle });
  try {
    await nft.run(tx);
  } catch (e) {
    // A concurrent DEL (ours or upstream's) removed them first: fine, they are gone.
    if (!isNotFound(e)) throw e;
  }
}

/** Rules of the attachment's owner in `masq_checks`. */
export async function holdsUpstream(nft: Interface, a: Attachment): Promise<boolean> {
  const hash = nftOwnerHash(a);
  return (await handles(nft, (c) => c.startsWith(hash))).length > 0;
}

/** What upstream's layout lacks for the attachment: its skeleton and a rule per address. */
export async function missingInUpstreamLayout(
  nft: Interface,
  a: Attachment,
  addresses: readonly string[],
): Promise<string[]> {
  const hash = nftOwnerHash(a);
  const [chain, base, chains] = await Promise.all([
    rulesOrNone(nft, UPSTREAM_MASQ_CHAIN),
    rulesOrNone(nft, "postrouting"),
    nft.list("chains").catch((e: unknown): string[] => {
      if (isNotFound(e)) return [];
      throw e;
    }),
  ]);
  const rules = chain.filter((r) => r.comment?.startsWith(hash));
  const table = `inet ${UPSTREAM_MASQ_TABLE}`;
  // A flushed table keeps its chains, empty.
  const missing = missingRules({ chains, rules: new Map([["postrouting", base]]) }, UPSTREAM_SKELETON, table);
  if (!chains.includes(UPSTREAM_MASQ_CHAIN)) missing.push(`chain ${UPSTREAM_MASQ_CHAIN} in table ${table}`);
  for (const x of addresses) {
    const ip = addressOf(x);
    if (!rules.some((r) => r.rule.split(" ").includes(ip) && r.rule.includes("masquerade")))
      missing.push(`nftables masquerade rule for ${ip} in table ${table} chain ${UPSTREAM_MASQ_CHAIN}`);
  }
  return missing;
}
