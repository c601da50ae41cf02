/**
 * The nftables backend: upstream's layout (table `inet cni_plugins_masquerade`, base chain
 * `postrouting` jumping to `masq_checks`, one rule per container address with a comment that
 * starts with the attachment's owner hash). ADD lists the chain's handles and comments (no rule
 * text) and replaces the attachment's rules in one nft run, so a repeated ADD leaves one copy, as
 * upstream's ADD does; DEL and GC list the chain to find rules by comment.
 */
import { nftOwnerComment, nftOwnerHash, staleOwner, type Attachment } from "../cni/attachment.js";
import { NO_EFFECTS, type Effects, type HostStateBackend } from "../hoststate/contract.js";
import type { HostTools } from "../hoststate/select.js";
import {
  applyWithSkeleton,
  concat,
  address,
  prefix,
  isNotFound,
  missingRules,
  type Interface,
  type Rule,
  type SkeletonChain,
  type SkeletonPlan,
  type Transaction,
} from "../nftables/index.js";
import { addressOf, familyOf, subnetOf } from "../address/index.js";
import { COMPONENT, type MasqSpec } from "./ipmasq.js";

export const MASQ_TABLE = "cni_plugins_masquerade";
export const MASQ_CHAIN = "masq_checks";

/** The shared rules, as upstream writes them: multicast is never masqueraded. */
const SKELETON: SkeletonChain[] = [
  {
    chain: "postrouting",
    rules: ["ip daddr 224.0.0.0/4 return", "ip6 daddr ff00::/8 return", `goto ${MASQ_CHAIN}`],
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

export class NftablesMasq implements HostStateBackend<MasqSpec> {
  readonly component = COMPONENT;
  readonly name = "nftables";
  /** `nft`: the Interface of table inet cni_plugins_masquerade. */
  constructor(
    readonly nft: Interface,
    private readonly tools: HostTools,
  ) {}

  present(): boolean {
    return this.tools.has("nft");
  }

  /**
   * The transaction of an ADD. `skeleton` also (re)declares the table and the shared chains, as
   * upstream does on every ADD; without it the transaction only adds this container's rules and
   * fails with ENOENT when the table is not there, which costs nft half as much.
   */
  private transaction(a: Attachment, s: MasqSpec, skeleton: boolean, stale: readonly number[]): Transaction {
    const tx = this.nft.newTransaction();
    if (skeleton) {
      tx.add({
        kind: "table",
        comment: "Masquerading for plugins from github.com/containernetworking/plugins",
      });
      tx.add({
        kind: "chain",
        name: MASQ_CHAIN,
        comment: "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet",
      });
      tx.add({ kind: "chain", name: "postrouting", type: "nat", hook: "postrouting", priority: "srcnat" });
    }
    // The shared rules every time: an ADD after `nft flush table` or `nft flush chain` (chains
    // kept, rules gone) puts them back; a missing chain is ENOENT and so the full transaction.
    for (const { chain, rules } of SKELETON) {
      tx.flush({ kind: "chain", name: chain });
      for (const rule of rules) tx.add({ kind: "rule", chain, rule });
    }
    for (const handle of stale) tx.delete({ kind: "rule", chain: MASQ_CHAIN, rule: "", handle });
    const comment = nftOwnerComment(a);
    for (const x of s.addresses) {
      const ip = familyOf(x) === 6 ? "ip6" : "ip";
      tx.add({
        kind: "rule",
        chain: MASQ_CHAIN,
        rule: concat(ip, "saddr", address(addressOf(x)), ip, "daddr !=", prefix(subnetOf(x)), "masquerade"),
        comment,
      });
    }
    return tx;
  }

  /** Handles of the chain's rules whose comment `match`es ([] when the table is not there). */
  private async handles(match: (comment: string) => boolean): Promise<number[]> {
    return (await rulesOrNone(this.nft, MASQ_CHAIN, false)).flatMap((r) =>
      r.comment !== undefined && r.handle !== undefined && match(r.comment) ? [r.handle] : [],
    );
  }

  /** The attachment's rules already there (an earlier ADD) are deleted in the same run. */
  async plan(a: Attachment, s: MasqSpec): Promise<SkeletonPlan> {
    const hash = nftOwnerHash(a);
    const stale = await this.handles((c) => c.startsWith(hash));
    return { fast: [this.transaction(a, s, false, stale)], full: [this.transaction(a, s, true, stale)] };
  }

  async setUp(a: Attachment, s: MasqSpec): Promise<Effects> {
    await applyWithSkeleton(this.nft, await this.plan(a, s));
    return NO_EFFECTS;
  }

  private async deleteRules(match: (comment: string) => boolean): Promise<void> {
    const handles = await this.handles(match);
    if (handles.length === 0) return;
    const tx = this.nft.newTransaction();
    for (const handle of handles) tx.delete({ kind: "rule", chain: MASQ_CHAIN, rule: "", handle });
    try {
      await this.nft.run(tx);
    } catch (e) {
      // A concurrent DEL removed them first: fine, they are gone.
      if (!isNotFound(e)) throw e;
    }
  }

  async remove(a: Attachment): Promise<Effects> {
    const hash = nftOwnerHash(a);
    await this.deleteRules((c) => c.startsWith(hash));
    return NO_EFFECTS;
  }

  async gc(network: string, valid: readonly Attachment[]): Promise<Effects> {
    await this.deleteRules(staleOwner(network, valid));
    return NO_EFFECTS;
  }

  /** A rule of its owner in the masquerade chain. */
  async holds(a: Attachment): Promise<boolean> {
    const hash = nftOwnerHash(a);
    return (await rulesOrNone(this.nft, MASQ_CHAIN)).some((r) => r.comment?.startsWith(hash));
  }

  async check(a: Attachment, s: MasqSpec): Promise<string[]> {
    const hash = nftOwnerHash(a);
    const [chain, base, chains] = await Promise.all([
      rulesOrNone(this.nft, MASQ_CHAIN),
      rulesOrNone(this.nft, "postrouting"),
      this.nft.list("chains").catch((e: unknown): string[] => {
        if (isNotFound(e)) return [];
        throw e;
      }),
    ]);
    const rules = chain.filter((r) => r.comment?.startsWith(hash));
    // The shared skeleton as it should be (a flushed table keeps its chains, empty).
    const table = `inet ${MASQ_TABLE}`;
    const missing = missingRules({ chains, rules: new Map([["postrouting", base]]) }, SKELETON, table);
    if (!chains.includes(MASQ_CHAIN)) missing.push(`chain ${MASQ_CHAIN} in table ${table}`);
    for (const x of s.addresses) {
      const ip = addressOf(x);
      if (!rules.some((r) => r.rule.split(" ").includes(ip) && r.rule.includes("masquerade")))
        missing.push(`nftables masquerade rule for ${ip} in table inet ${MASQ_TABLE} chain ${MASQ_CHAIN}`);
    }
    return missing;
  }
}
