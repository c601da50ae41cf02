/**
 * The nftables backend: upstream's layout (table `inet cni_plugins_masquerade`, base chain
 * `postrouting` jumping to `masq_checks`, one rule per container address with a comment that
 * starts with a hash of the instance). ADD is one nft run with no listing; DEL and GC list the
 * chain to find rules by comment.
 */
import {
  NFTables,
  applyWithSkeleton,
  concat,
  address,
  prefix,
  isNotFound,
  type Transaction,
} from "../nftables/index.js";
import { addressOf, familyOf, subnetOf } from "../address/index.js";
import {
  nftComment,
  nftInstanceHash,
  nftNetworkHash,
  type Attachment,
  type IpMasqBackend,
  type MasqInstance,
  type MasqSetup,
} from "./ipmasq.js";

export const MASQ_TABLE = "cni_plugins_masquerade";
export const MASQ_CHAIN = "masq_checks";

export class NftablesMasq implements IpMasqBackend {
  readonly name = "nftables";
  readonly nft: NFTables;
  constructor(opts: { netns?: string; nftPath?: string } = {}) {
    this.nft = new NFTables({ family: "inet", table: MASQ_TABLE, ...opts });
  }

  /**
   * The transaction of an ADD, for callers that apply it together with others. `skeleton` also
   * (re)declares the table and the shared chains, as upstream does on every ADD; without it the
   * transaction only adds this container's rules and fails with ENOENT when the table is not
   * there, which costs nft half as much: try that first, then the full one (see setup()).
   */
  setupTransaction(s: MasqSetup, skeleton = true): Transaction {
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
      tx.flush({ kind: "chain", name: "postrouting" });
      tx.add({ kind: "rule", chain: "postrouting", rule: "ip daddr 224.0.0.0/4 return" });
      tx.add({ kind: "rule", chain: "postrouting", rule: "ip6 daddr ff00::/8 return" });
      tx.add({ kind: "rule", chain: "postrouting", rule: `goto ${MASQ_CHAIN}` });
    }
    const comment = nftComment(s);
    for (const a of s.addresses) {
      const ip = familyOf(a) === 6 ? "ip6" : "ip";
      tx.add({
        kind: "rule",
        chain: MASQ_CHAIN,
        rule: concat(ip, "saddr", address(addressOf(a)), ip, "daddr !=", prefix(subnetOf(a)), "masquerade"),
        comment,
      });
    }
    return tx;
  }

  async setup(s: MasqSetup): Promise<void> {
    await applyWithSkeleton([this.setupTransaction(s, false)], [this.setupTransaction(s)]);
  }

  private async rulesWithPrefix(
    commentPrefix: string,
  ): Promise<Array<{ handle: number; comment: string; rule: string }>> {
    try {
      const rules = await this.nft.listRules(MASQ_CHAIN, { text: true });
      return rules
        .filter((r) => r.comment?.startsWith(commentPrefix) && r.handle !== undefined)
        .map((r) => ({ handle: r.handle!, comment: r.comment!, rule: r.rule }));
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
  }

  private async deleteHandles(handles: number[]): Promise<void> {
    if (handles.length === 0) return;
    const tx = this.nft.newTransaction();
    for (const h of handles) tx.delete({ kind: "rule", chain: MASQ_CHAIN, rule: "", handle: h });
    try {
      await this.nft.run(tx);
    } catch (e) {
      // A concurrent DEL removed them first: fine, they are gone.
      if (!isNotFound(e)) throw e;
    }
  }

  async teardown(i: MasqInstance): Promise<void> {
    const rules = await this.rulesWithPrefix(nftInstanceHash(i));
    await this.deleteHandles(rules.map((r) => r.handle));
  }

  async gc(network: string, valid: Attachment[]): Promise<void> {
    const keep = new Set(
      valid.map((a) => nftComment({ network, containerId: a.containerId, ifname: a.ifname })),
    );
    const rules = await this.rulesWithPrefix(nftNetworkHash(network));
    await this.deleteHandles(rules.filter((r) => !keep.has(r.comment)).map((r) => r.handle));
  }

  async check(s: MasqSetup): Promise<string[]> {
    const [rules, base] = await Promise.all([
      this.rulesWithPrefix(nftInstanceHash(s)),
      this.nft.listRules("postrouting", { text: true }).catch((e: unknown) => {
        if (isNotFound(e)) return [];
        throw e;
      }),
    ]);
    const missing: string[] = [];
    // ADD only declares the shared chains when the table is missing: CHECK is where a damaged
    // skeleton shows up.
    if (!base.some((r) => r.rule === `goto ${MASQ_CHAIN}`))
      missing.push(`the postrouting base chain jumping to ${MASQ_CHAIN} in table inet ${MASQ_TABLE}`);
    for (const a of s.addresses) {
      const ip = addressOf(a);
      if (!rules.some((r) => r.rule.split(" ").includes(ip) && r.rule.includes("masquerade")))
        missing.push(`nftables masquerade rule for ${ip} in table inet ${MASQ_TABLE} chain ${MASQ_CHAIN}`);
    }
    return missing;
  }
}
