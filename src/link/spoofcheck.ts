/**
 * bridge's MAC spoof check, on the project's nftables library (upstream uses a second library
 * for it). Same objects as upstream so either side can tear down the other's: table `bridge
 * nat`, base chain `PREROUTING` (filter, prerouting, -300) with `iifname <host veth> jump
 * cni-br-iface-<id>`, that chain jumping to `cni-br-iface-<id>-mac`, which returns for the
 * container's MAC and drops the rest; every rule commented `macspoofchk-<id>`, where `<id>` is
 * `<containerID>-<ifname>` (upstream's uniqueID). Only an nftables backend: upstream has no
 * other.
 */
import { parseMac } from "../address/index.js";
import type { Attachment } from "../cni/attachment.js";
import { NO_EFFECTS, type Effects, type HostStateBackend } from "../hoststate/contract.js";
import type { HostTools } from "../hoststate/select.js";
import {
  applyWithSkeleton,
  concat,
  ifname,
  isNotFound,
  type Interface,
  type Rule,
  type SkeletonPlan,
  type Transaction,
} from "../nftables/index.js";

export const SPOOF_FAMILY = "bridge";
export const SPOOF_TABLE = "nat";
const BASE_CHAIN = "PREROUTING";
const IFACE_PREFIX = "cni-br-iface-";

export interface SpoofSpec {
  /** The host side of the container's veth. */
  hostVeth: string;
  /** The container interface's MAC, the only source MAC let through. */
  mac: string;
}

const refIdOf = (a: Attachment): string => `${a.containerId}-${a.ifname}`;
const ifaceChain = (refId: string): string => `${IFACE_PREFIX}${refId}`;
const macChain = (refId: string): string => `${ifaceChain(refId)}-mac`;
const commentOf = (refId: string): string => `macspoofchk-${refId}`;

export class SpoofCheck implements HostStateBackend<SpoofSpec> {
  readonly component = "spoofcheck";
  readonly name = "nftables";
  /**
   * `nft`: the Interface of table bridge nat. `links`: the host's interface names, for GC (the
   * table is shared by every network, so a check whose host veth is gone is what is stale).
   */
  constructor(
    readonly nft: Interface,
    private readonly tools: HostTools,
    private readonly links: () => Promise<ReadonlySet<string>>,
  ) {}

  present(): boolean {
    return this.tools.has("nft");
  }

  /**
   * One transaction: declare, flush our chains, add the rules (upstream needs two runs). Without
   * `skeleton` the table and base chain are assumed (see applyWithSkeleton).
   */
  private transaction(refId: string, s: SpoofSpec, skeleton: boolean, stale: readonly number[]): Transaction {
    const canonical = parseMac(s.mac);
    if (canonical === undefined) throw new Error(`invalid MAC address ${JSON.stringify(s.mac)}`);
    const tx = this.nft.newTransaction();
    if (skeleton) {
      tx.add({ kind: "table" });
      tx.add({
        kind: "chain",
        name: BASE_CHAIN,
        type: "filter",
        hook: "prerouting",
        priority: -300,
        policy: "accept",
      });
    }
    const [iface, mac, comment] = [ifaceChain(refId), macChain(refId), commentOf(refId)];
    for (const handle of stale) tx.delete({ kind: "rule", chain: BASE_CHAIN, rule: "", handle });
    tx.add({ kind: "chain", name: iface });
    tx.add({ kind: "chain", name: mac });
    tx.flush({ kind: "chain", name: iface });
    tx.flush({ kind: "chain", name: mac });
    tx.add({
      kind: "rule",
      chain: BASE_CHAIN,
      rule: concat("iifname", ifname(s.hostVeth), "jump", iface),
      comment,
    });
    tx.add({ kind: "rule", chain: iface, rule: `jump ${mac}`, comment });
    tx.add({ kind: "rule", chain: mac, rule: `ether saddr ${canonical} return`, comment });
    tx.add({ kind: "rule", chain: mac, rule: "drop", comment });
    return tx;
  }

  /**
   * A jump of an earlier ADD of the attachment (found by its comment, no rule text read) is
   * deleted in the same run: a repeated ADD leaves one jump (upstream's adds another).
   */
  async plan(a: Attachment, s: SpoofSpec): Promise<SkeletonPlan> {
    const refId = refIdOf(a);
    const stale = ((await this.rules(BASE_CHAIN, false)) ?? []).flatMap((r) =>
      r.comment === commentOf(refId) && r.handle !== undefined ? [r.handle] : [],
    );
    return {
      fast: [this.transaction(refId, s, false, stale)],
      full: [this.transaction(refId, s, true, stale)],
    };
  }

  async setUp(a: Attachment, s: SpoofSpec): Promise<Effects> {
    await applyWithSkeleton(this.nft, await this.plan(a, s));
    return NO_EFFECTS;
  }

  private async rules(chain: string, text = true): Promise<Rule[] | undefined> {
    try {
      return await this.nft.listRules(chain, { text });
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** Handles of a check's jump rules in the base chain. */
  private static jumps(base: readonly Rule[], refId: string): number[] {
    return base
      .filter((r) => r.comment === commentOf(refId) || r.rule.endsWith(`jump ${ifaceChain(refId)}`))
      .flatMap((r) => (r.handle === undefined ? [] : [r.handle]));
  }

  private async removeRefIds(
    refIds: readonly string[],
    base: readonly Rule[],
    chains: readonly string[],
  ): Promise<void> {
    const tx = this.nft.newTransaction();
    for (const refId of refIds)
      for (const h of SpoofCheck.jumps(base, refId))
        tx.delete({ kind: "rule", chain: BASE_CHAIN, rule: "", handle: h });
    // Flush first: a chain that still has rules cannot be deleted.
    const mine = refIds.flatMap((id) => [ifaceChain(id), macChain(id)]).filter((c) => chains.includes(c));
    for (const c of mine) tx.flush({ kind: "chain", name: c });
    for (const c of mine) tx.delete({ kind: "chain", name: c });
    if (tx.size > 0) await this.nft.run(tx);
  }

  private async chains(): Promise<string[]> {
    try {
      return await this.nft.list("chains");
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
  }

  async remove(a: Attachment): Promise<Effects> {
    const [base, chains] = await Promise.all([this.rules(BASE_CHAIN), this.chains()]);
    await this.removeRefIds([refIdOf(a)], base ?? [], chains);
    return NO_EFFECTS;
  }

  /** Checks not in `valid` whose host veth no longer exists (of any network: see the constructor). */
  async gc(_network: string, valid: readonly Attachment[]): Promise<Effects> {
    const chains = await this.chains();
    const keep = new Set(valid.map(refIdOf));
    const refIds = chains
      .filter((c) => c.startsWith(IFACE_PREFIX) && !c.endsWith("-mac"))
      .map((c) => c.slice(IFACE_PREFIX.length))
      .filter((id) => !keep.has(id));
    if (refIds.length === 0) return NO_EFFECTS;
    const [base, present] = await Promise.all([this.rules(BASE_CHAIN), this.links()]);
    const stale = refIds.filter((id) => {
      const jump = (base ?? []).find((r) => r.rule.endsWith(`jump ${ifaceChain(id)}`));
      const iface = jump?.rule.match(/iifname "([^"]+)"/)?.[1];
      return !iface || !present.has(iface);
    });
    if (stale.length) await this.removeRefIds(stale, base ?? [], chains);
    return NO_EFFECTS;
  }

  /** Its jump in the base chain or one of its two chains. */
  async holds(a: Attachment): Promise<boolean> {
    const refId = refIdOf(a);
    const [base, chains] = await Promise.all([this.rules(BASE_CHAIN), this.chains()]);
    return (
      SpoofCheck.jumps(base ?? [], refId).length > 0 ||
      chains.includes(ifaceChain(refId)) ||
      chains.includes(macChain(refId))
    );
  }

  async check(a: Attachment, s: SpoofSpec): Promise<string[]> {
    const refId = refIdOf(a);
    const [base, mac] = await Promise.all([this.rules(BASE_CHAIN), this.rules(macChain(refId))]);
    const missing: string[] = [];
    if (SpoofCheck.jumps(base ?? [], refId).length === 0)
      missing.push(`spoof-check jump rule in bridge ${SPOOF_TABLE} ${BASE_CHAIN}`);
    if (!mac) missing.push(`spoof-check chain ${macChain(refId)}`);
    else if (!mac.some((r) => r.rule.includes(`ether saddr ${parseMac(s.mac) ?? s.mac} return`)))
      missing.push(`spoof-check rule allowing ${s.mac} in chain ${macChain(refId)}`);
    return missing;
  }
}
