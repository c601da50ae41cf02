/**
 * `hostForward`: the opt-in way through a host forward policy that drops what it does not know.
 * An accept in cni-nft's table (or in iptables' FORWARD, a table of its own under iptables-nft)
 * ends only that chain; a drop in another base chain at the forward hook still wins. So the
 * accept has to be in the host firewall's own path:
 *
 *   nftables backend (it marks every packet it accepts): one rule per network,
 *     in the operator's nftables chain, inserted first:
 *       meta mark & 0x00001000 == 0x00001000 accept comment "<net hash>, hostForward ..."
 *     in iptables (FORWARD policy DROP, as Docker sets it), where upstream's firewall plugin puts
 *     its rules, FORWARD -> CNI-FORWARD:
 *       -A CNI-FORWARD -m mark --mark 0x1000/0x1000 -m comment --comment "..." -j ACCEPT
 *     removed when the network's last container goes (DEL or GC find none of its elements left).
 *   iptables backend (its packets carry no mark): in the operator's nftables chain, per
 *     attachment, the same accepts as its CNI-FORWARD rules, commented with the owner:
 *       ip saddr 10.88.0.5 accept; ip daddr 10.88.0.5 ct state established,related accept
 *     Against iptables FORWARD DROP it needs nothing: its rules already sit in FORWARD.
 *
 * The rules carry what they are in their comment, so CHECK, DEL and GC need one listing without
 * the rules' text.
 */
import { CniError, ErrorCode } from "../../../src/cni/index.js";
import {
  nftNetworkHash,
  nftOwnerComment,
  ownerHashOf,
  staleOwner,
  type Attachment,
} from "../../../src/cni/attachment.js";
import type { Host } from "../../../src/hoststate/index.js";
import { isNotFound, type Interface, type Rule } from "../../../src/nftables/index.js";
import { deleteLine, insertFirst, quoteArg, type IpFamily } from "../../../src/iptables/iptables.js";
import { FilterTable, PRIV_CHAIN, rules as iptRules } from "./firewall_iptables.js";
import { familyOf, type HostForward } from "./firewall_backend.js";

export function markHex(mark: number): string {
  return `0x${mark.toString(16).padStart(8, "0")}`;
}

/** A network's mark accept: its hash first (what DEL and GC match), then the mark and the name. */
export function hostForwardComment(network: string, mark: number): string {
  const name = network.replace(/[^A-Za-z0-9_.-]/g, "");
  return `${nftNetworkHash(network)}, hostForward mark ${markHex(mark)}, net: ${name}`.slice(0, 128);
}

const isNetworkRule = (network: string) => (comment: string | undefined) =>
  comment !== undefined && comment.startsWith(`${nftNetworkHash(network)}, hostForward`);

/** What every iptables rule of the network's accept holds (the hash is hex: nothing to quote). */
const iptMarker = (network: string): string => `--comment "${nftNetworkHash(network)}, hostForward`;

function iptMarkRule(network: string, mark: number): string {
  const m = `0x${mark.toString(16)}`;
  return `-A ${PRIV_CHAIN} -m mark --mark ${m}/${m} -m comment --comment ${quoteArg(hostForwardComment(network, mark))} -j ACCEPT`;
}

/** The accepts of one address, as the iptables backend's CNI-FORWARD rules have them. */
function addressRules(address: string): string[] {
  const [ip, v] = [address.split("/")[0]!, familyOf(address) === 4 ? "ip" : "ip6"];
  return [`${v} daddr ${ip} ct state established,related accept`, `${v} saddr ${ip} accept`];
}

export class HostForwardRules {
  private readonly chain?: { nft: Interface; name: string; where: string; family: string };
  private readonly filter: FilterTable;

  constructor(
    private readonly host: Pick<Host, "nft" | "iptables">,
    readonly conf: HostForward,
  ) {
    const n = conf.nftables;
    if (n)
      this.chain = {
        nft: host.nft(n.family, n.table),
        name: n.chain,
        where: `${n.family} ${n.table} ${n.chain}`,
        family: n.family,
      };
    this.filter = new FilterTable(host.iptables);
  }

  /** The host chain's rules; a missing chain is the operator's config naming what is not there. */
  private async hostRules(mustExist: boolean): Promise<Rule[]> {
    const c = this.chain!;
    try {
      return await c.nft.listRules(c.name);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      if (!mustExist) return [];
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `hostForward.nftables: chain ${c.where} does not exist on this host (name the host firewall's forward base chain)`,
      );
    }
  }

  /** Deletes the host chain's rules `which` selects (by handle), then inserts `add` first. */
  private async rewrite(have: Rule[], which: (r: Rule) => boolean, add: Rule[]): Promise<void> {
    const c = this.chain!;
    const gone = have.filter((r) => which(r) && r.handle !== undefined);
    if (gone.length === 0 && add.length === 0) return;
    const tx = c.nft.newTransaction();
    for (const r of gone) tx.delete({ kind: "rule", chain: c.name, rule: "", handle: r.handle! });
    for (const r of add) tx.insert(r);
    await c.nft.run(tx);
  }

  private iptFamilies(): IpFamily[] {
    return ([4, 6] as const).filter((f) => this.host.iptables.available(f));
  }

  /** nftables backend: the network's accept of `mark`, where it is missing or made for another mark. */
  async setUpMark(network: string, mark: number): Promise<void> {
    const comment = hostForwardComment(network, mark);
    if (this.chain) {
      const have = await this.hostRules(true);
      if (!have.some((r) => r.comment === comment)) {
        const rule = `meta mark & ${markHex(mark)} == ${markHex(mark)} accept`;
        const add: Rule = { kind: "rule", chain: this.chain.name, rule, comment };
        await this.rewrite(have, (r) => isNetworkRule(network)(r.comment), [add]);
      }
    }
    if (this.conf.iptables)
      for (const family of this.iptFamilies())
        await this.filter.change(family, async (saved) => {
          await this.filter.ensureChains(family, saved, [PRIV_CHAIN]);
          const want = iptMarkRule(network, mark);
          const lines = saved.rules
            .filter((r) => r.includes(iptMarker(network)) && r !== want)
            .map(deleteLine);
          if (!saved.rules.includes(iptRules.forwardJump)) lines.push(insertFirst(iptRules.forwardJump));
          if (!saved.rules.includes(want)) lines.push(want);
          return lines;
        });
  }

  async missingMark(network: string, mark: number): Promise<string[]> {
    const missing: string[] = [];
    const comment = hostForwardComment(network, mark);
    if (this.chain && !(await this.hostRules(false)).some((r) => r.comment === comment))
      missing.push(`hostForward: the accept of mark ${markHex(mark)} in chain ${this.chain.where}`);
    if (this.conf.iptables)
      for (const family of this.iptFamilies()) {
        const saved = await this.host.iptables.save(family, "filter");
        const tool = family === 4 ? "iptables" : "ip6tables";
        for (const r of [iptRules.forwardJump, iptMarkRule(network, mark)])
          if (!saved.rules.includes(r)) missing.push(`hostForward: ${tool} rule ${r}`);
      }
    return missing;
  }

  /** The network's accepts, once none of its containers is left (the caller holds the lock). */
  async removeMark(network: string): Promise<void> {
    const mine = isNetworkRule(network);
    if (this.chain) await this.rewrite(await this.hostRules(false), (r) => mine(r.comment), []);
    if (this.conf.iptables)
      for (const family of this.iptFamilies())
        await this.filter.change(family, (saved) =>
          saved.rules.filter((r) => r.includes(iptMarker(network))).map(deleteLine),
        );
  }

  /** The family's addresses the host chain sees (an `ip` table never sees IPv6). */
  private seen(addresses: readonly string[]): string[] {
    const f = this.chain?.family;
    return addresses.filter((a) => f === "inet" || (f === "ip") === (familyOf(a) === 4));
  }

  /** iptables backend: the attachment's address accepts in the host chain. */
  async setUpAddresses(a: Attachment, addresses: readonly string[]): Promise<void> {
    if (!this.chain) return;
    const comment = nftOwnerComment(a);
    const have = await this.hostRules(true);
    const want = this.seen(addresses).flatMap(addressRules);
    const mine = have.filter((r) => r.comment === comment);
    // Rewritten only when its addresses changed (a listing without text cannot compare rules).
    if (mine.length === want.length) return;
    const add = want.map((rule): Rule => ({ kind: "rule", chain: this.chain!.name, rule, comment }));
    await this.rewrite(have, (r) => r.comment === comment, add);
  }

  async missingAddresses(a: Attachment, addresses: readonly string[]): Promise<string[]> {
    if (!this.chain) return [];
    const comment = nftOwnerComment(a);
    const want = this.seen(addresses).flatMap(addressRules);
    const have = (await this.hostRules(false)).filter((r) => r.comment === comment).length;
    return have >= want.length
      ? []
      : [`hostForward: the accepts of the container in chain ${this.chain.where}`];
  }

  async removeAddresses(a: Attachment): Promise<void> {
    if (!this.chain) return;
    const comment = nftOwnerComment(a);
    await this.rewrite(await this.hostRules(false), (r) => r.comment === comment, []);
  }

  /** Whether the host chain holds anything of the attachment. */
  async holdsAddresses(a: Attachment): Promise<boolean> {
    if (!this.chain) return false;
    const comment = nftOwnerComment(a);
    return (await this.hostRules(false)).some((r) => r.comment === comment);
  }

  async gcAddresses(network: string, valid: readonly Attachment[]): Promise<void> {
    if (!this.chain) return;
    const stale = staleOwner(network, valid);
    // Owner comments only: `<net>-<attachment>`, not the network's own `<net>, hostForward`.
    await this.rewrite(
      await this.hostRules(false),
      (r) => r.comment !== undefined && ownerHashOf(r.comment).includes("-") && stale(r.comment),
      [],
    );
  }
}
