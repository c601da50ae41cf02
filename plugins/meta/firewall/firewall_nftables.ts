/**
 * The nftables backend (cni-nft's own; upstream has none). One table, `inet cni_nft_firewall`:
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
 * A container is elements, not rules: its addresses, each with a comment that starts with the
 * instance hash (as the masquerade backend's rules), so ADD is one nft run with no listing and the
 * chains never grow. DEL and GC list the two sets and delete the elements they own.
 *
 * An accept here only ends this table's chain: every other base chain at the forward hook still
 * runs, and its drop wins. That is why accepted packets carry a mark that another table (a host
 * firewall) can accept on; the priority puts this chain before chains at the standard filter
 * priority, so the mark is set when theirs runs. See docs/firewall.md.
 */
import { CniError, ErrorCode, withFlock } from "../../../src/cni/index.js";
import {
  NFTables,
  applyWithSkeleton,
  ifname,
  isNotFound,
  type Element,
  type Transaction,
} from "../../../src/nftables/index.js";
import {
  nftNetworkHash,
  nftOwnerComment as nftComment,
  nftOwnerHash as nftInstanceHash,
} from "../../../src/cni/attachment.js";
import {
  DEFAULT_NFT_MARK,
  familyOf,
  type FirewallBackend,
  type FirewallConf,
  type Instance,
  type IsolationBackend,
} from "./firewall_backend.js";

export const NFT_TABLE = "cni_nft_firewall";
export const NFT_PRIORITY = "filter - 10";
export const NFT_LOCK_FILE = "/run/cni-nft-firewall-nft.lock";
const SETS = { 4: "containers4", 6: "containers6" } as const;

function markCounter(mark: number): string {
  return `mark_${markHex(mark)}`;
}

export function markHex(mark: number): string {
  return `0x${mark.toString(16).padStart(8, "0")}`;
}

export class NftablesFirewall implements FirewallBackend, IsolationBackend {
  readonly name = "nftables";
  readonly nft: NFTables;
  private readonly exec: { netns?: string };
  constructor(opts: { netns?: string } = {}) {
    this.nft = new NFTables({ family: "inet", table: NFT_TABLE, ...opts });
    this.exec = { ...opts };
  }

  /** The table, its chains and sets, and the forward chain's rules (rewritten: it is ours). */
  private base(tx: Transaction, mark: number): void {
    const m = markHex(mark);
    tx.add({
      kind: "table",
      comment: "cni-nft firewall plugin: forward accept for containers, bridge isolation",
    });
    // Names the mark the rules below set: an ADD's fast path touches it and so fails (ENOENT)
    // when the rules were written for another mark, which makes it rewrite them.
    tx.add({ kind: "counter", name: markCounter(mark), comment: "the accept mark of the forward rules" });
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
    tx.add({ kind: "set", name: "bridge_pairs", type: "ifname . ifname" });
    tx.add({ kind: "set", name: "isolated_pairs", type: "ifname . ifname" });
    tx.add({ kind: "chain", name: "admin", comment: "operator rules, never flushed by cni-nft" });
    tx.add({ kind: "chain", name: "isolation" });
    tx.flush({ kind: "chain", name: "isolation" });
    tx.add({ kind: "rule", chain: "isolation", rule: "iifname . oifname @isolated_pairs drop" });
    tx.add({ kind: "rule", chain: "isolation", rule: "iifname . oifname @bridge_pairs return" });
    tx.add({ kind: "rule", chain: "isolation", rule: "iifname @bridges oifname @bridges drop" });
    tx.add({
      kind: "chain",
      name: "forward",
      type: "filter",
      hook: "forward",
      priority: NFT_PRIORITY,
      policy: "accept",
    });
    tx.flush({ kind: "chain", name: "forward" });
    tx.add({ kind: "rule", chain: "forward", rule: "jump isolation" });
    tx.add({ kind: "rule", chain: "forward", rule: "jump admin" });
    for (const [ip, set] of [
      ["ip", SETS[4]],
      ["ip6", SETS[6]],
    ] as const) {
      tx.add({
        kind: "rule",
        chain: "forward",
        rule: `${ip} daddr @${set} ct state established,related meta mark set meta mark | ${m} accept`,
      });
      tx.add({
        kind: "rule",
        chain: "forward",
        rule: `${ip} saddr @${set} meta mark set meta mark | ${m} accept`,
      });
    }
  }

  async add(conf: FirewallConf): Promise<void> {
    const comment = nftComment(conf);
    const build = (skeleton: boolean): Transaction => {
      const tx = this.nft.newTransaction();
      if (skeleton) this.base(tx, conf.mark);
      else tx.reset({ kind: "counter", name: markCounter(conf.mark) });
      for (const a of conf.addresses) {
        const set = SETS[familyOf(a)];
        const key = [a.split("/")[0]!];
        // Replace an element left by a container that had this address before (another owner).
        tx.destroy({ kind: "element", set, key });
        tx.add({ kind: "element", set, key, comment });
      }
      if (conf.ingressPolicy !== "open" && conf.bridge)
        this.isolationElements(tx, conf.bridge, conf.ingressPolicy === "isolated");
      return tx;
    };
    // The table and its rules are rewritten only when missing or made for another mark.
    await withFlock(NFT_LOCK_FILE, () =>
      applyWithSkeleton(this.nft, { fast: [build(false)], full: [build(true)] }),
    );
  }

  private async owned(match: (comment: string) => boolean): Promise<Element[]> {
    const out: Element[] = [];
    for (const set of Object.values(SETS)) {
      try {
        for (const e of await this.nft.listElements("set", set))
          if (e.comment !== undefined && match(e.comment)) out.push(e);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    }
    return out;
  }

  private async remove(match: (comment: string) => boolean): Promise<void> {
    await withFlock(NFT_LOCK_FILE, async () => {
      const gone = await this.owned(match);
      if (gone.length === 0) return;
      const tx = this.nft.newTransaction();
      for (const e of gone) tx.delete({ kind: "element", set: e.set!, key: e.key });
      await this.nft.run(tx);
    });
  }

  /** Needs no prevResult: the elements are found by the instance's comment. */
  del(i: Instance): Promise<void> {
    const hash = nftInstanceHash(i);
    return this.remove((c) => c.startsWith(hash));
  }

  gc(network: string, valid: Array<{ containerId: string; ifname: string }>): Promise<void> {
    const keep = new Set(valid.map((a) => nftInstanceHash({ network, ...a })));
    const net = nftNetworkHash(network);
    return this.remove((c) => c.startsWith(net) && !keep.has(c.split(",")[0]!));
  }

  async check(conf: FirewallConf): Promise<string[]> {
    const missing: string[] = [];
    let chains: string[];
    try {
      chains = await this.nft.list("chains");
    } catch (e) {
      if (isNotFound(e)) return [`nftables table inet ${NFT_TABLE}`];
      throw e;
    }
    for (const ch of ["forward", "admin", "isolation"])
      if (!chains.includes(ch)) missing.push(`chain ${ch} in table inet ${NFT_TABLE}`);
    const comment = nftComment(conf);
    const mine = new Set((await this.owned((c) => c === comment)).map((e) => e.key[0]));
    for (const a of conf.addresses) {
      const ip = a.split("/")[0]!;
      if (!mine.has(ip)) missing.push(`element ${ip} of set ${SETS[familyOf(a)]} in table inet ${NFT_TABLE}`);
    }
    return missing;
  }

  private isolationElements(tx: Transaction, bridge: string, isolated: boolean): void {
    const b = ifname(bridge).text;
    tx.add({ kind: "element", set: "bridges", key: [b] });
    tx.add({ kind: "element", set: "bridge_pairs", key: [b, b] });
    if (isolated) tx.add({ kind: "element", set: "isolated_pairs", key: [b, b] });
  }

  /** For the firewalld backend on a host without iptables; add() does this itself. */
  async setupIsolation(
    bridge: string,
    isolated: boolean,
    _families: Array<4 | 6> = [],
    mark = DEFAULT_NFT_MARK,
  ): Promise<void> {
    const tx = this.nft.newTransaction();
    this.base(tx, mark);
    this.isolationElements(tx, bridge, isolated);
    await withFlock(NFT_LOCK_FILE, () => this.nft.run(tx));
  }

  async checkIsolation(bridge: string, isolated: boolean): Promise<string[]> {
    const missing: string[] = [];
    const want: Array<[string, number]> = [
      ["bridges", 1],
      ["bridge_pairs", 2],
      ...(isolated ? ([["isolated_pairs", 2]] as Array<[string, number]>) : []),
    ];
    for (const [set, n] of want) {
      let elems: Element[] = [];
      try {
        elems = await this.nft.listElements("set", set);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      const ok = elems.some((e) => e.key.length === n && e.key.every((k) => k === bridge));
      if (!ok) missing.push(`bridge ${bridge} in set ${set} of table inet ${NFT_TABLE}`);
    }
    return missing;
  }
}

export function nftError(e: unknown): CniError {
  return e instanceof CniError ? e : new CniError(ErrorCode.Internal, `nftables: ${(e as Error).message}`);
}
