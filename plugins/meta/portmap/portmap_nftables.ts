/**
 * The nftables backend, built so that a packet, an ADD and a DEL cost the same with 10,000
 * containers as with one: table `inet cni_nft_portmap` holds a fixed set of rules, and every
 * container's state is elements of hash maps keyed by exact keys, each element's comment naming
 * its owner (network, interface, container). See docs/portmap.md and portmap_nftables_layout.ts.
 *
 *   prerouting/output (nat, dstnat): fib daddr type local jump hostports
 *   hostports: per family, in order
 *     daddr . l4proto . dport @guarded_ip4 return     keys with conditions: their class's
 *     dnat to daddr . l4proto . dport map @dnat_ip4   mappings with a hostIP
 *     l4proto . dport @guarded_any4 return
 *     dnat to l4proto . dport map @dnat_any4          mappings for any local address
 *   cond4-<class> and cond4-<class>-out (nat, dstnat + 1; one pair per family and conditions,
 *     with a counter of the same name): <conditions> counter name daddr . l4proto . dport map
 *     @cond_ip4-<class> dnat ... map @dnat_ip4; a guarded hostIP key returns; the same for
 *     l4proto . dport and @cond_any4-<class> (cond_*: key : "cond4-<class>")
 *   postrouting (nat, srcnat): ct status dnat daddr . l4proto . dport @snat_all4 masquerade
 *     snat_all4: container . proto . port (masqAll)
 *   snat_sub4-<subnet> (nat, srcnat; one per subnet, with a counter of the same name):
 *     ct status dnat daddr <subnet> saddr <subnet> (or 127.0.0.1)
 *       counter name daddr . l4proto . dport map @snat_sub4 masquerade
 *     snat_sub4: container . proto . port : "snat_sub4-<subnet>" (no verdicts: see the layout)
 *   owners: one (owner tag . key tag) element per element above
 *
 * ADD creates its elements with `create`, so it fails rather than overwrites when a key exists;
 * only then does it take the lock, list the table and take the keys over (moving their owner
 * elements too). A repeated ADD asserts the keys its record names instead (writeOwned: its owner
 * elements deleted and added again, which fails unless they are still there), so it too commits
 * without reading while its keys are its own. DEL deletes each element together with its owner
 * element in one transaction: a key taken over by another container has another owner element,
 * so the transaction fails and that key is skipped. DEL therefore never reads nft (every read costs O(table) in nft 1.0.6,
 * which fetches every element of the table first); its keys come from its config, else from the
 * attachment's record (src/hoststate/records.ts) that ADD writes before touching nft.
 *
 * This file is ADD and the backend's face; beside it: the layout (_layout), CHECK (_check), DEL
 * and GC (_remove), the records (_records), the listed table (_state), the earlier layouts read
 * and upgraded (_legacy, _v2, _guards) and upstream's nftables layout (_upstream).
 */
import { withFlock } from "../../../src/cni/index.js";
import { nftOwnerComment, nftOwnerHash, staleOwner, type Attachment } from "../../../src/cni/attachment.js";
import { disown, keyOnly, ownerElement, takeOver } from "../../../src/hoststate/nft_owners.js";
import type {
  AttachmentRecords,
  Effects,
  HostStateBackend,
  HostTools,
} from "../../../src/hoststate/index.js";
import { isAlreadyExists, isNotFound, type Element, type Interface } from "../../../src/nftables/index.js";
import {
  deleteUpstreamRules,
  missingInUpstreamLayout,
  readUpstreamPortmap,
  udpHostPorts,
} from "./portmap_nftables_upstream.js";
import {
  condClassTransaction,
  desired,
  keyText,
  ownTransaction,
  snatChainTransaction,
  staticTransaction,
  writeSkeletonRules,
  type Desired,
} from "./portmap_nftables_layout.js";
import { missingInOwnTable } from "./portmap_nftables_check.js";
import { isLegacy, upgradeTransaction } from "./portmap_nftables_legacy.js";
import { hasOldGuards, upgradeGuardsTransaction } from "./portmap_nftables_guards.js";
import { forgetMoved, recordUpgraded, remember } from "./portmap_nftables_records.js";
import { dropUnused, removeAttachment, removeListed, type OwnTable } from "./portmap_nftables_remove.js";
import { guardsOf, listState, udpPorts, type TableState } from "./portmap_nftables_state.js";
import { isV2, upgradeV2Transaction } from "./portmap_nftables_v2.js";
import { LOCK_FILE, type PortMapConf, type PortMapSpec } from "./config.js";

export { NFT_TABLE, desired, names } from "./portmap_nftables_layout.js";

export class NftablesPortMapper implements HostStateBackend<PortMapSpec> {
  readonly component = "portmap";
  readonly name = "nftables";
  /** `nft`: the Interface of table inet cni_nft_portmap (upstream's tables through forTable). */
  constructor(
    readonly nft: Interface,
    private readonly tools: HostTools,
    private readonly records: AttachmentRecords,
  ) {}

  present(): boolean {
    return this.tools.has("nft");
  }

  /** The table and its records, for DEL and GC (portmap_nftables_remove.ts). */
  private get own(): OwnTable {
    return { nft: this.nft, records: this.records };
  }

  /**
   * Everything in our table in one nft run (rule texts in a second, with `text`), or undefined
   * when the table does not exist.
   */
  state(opts: { text?: boolean } = {}): Promise<TableState | undefined> {
    return listState(this.nft, opts);
  }

  async setUp(a: Attachment, spec: PortMapSpec): Promise<Effects> {
    const c: PortMapConf = { ...a, ...spec };
    const want = desired(c);
    const effects: Effects = { udpPorts: udpPorts(want.elements) };
    if (want.elements.length === 0) return effects;
    const { recorded, moved } = remember(this.records, a, want);
    const hash = nftOwnerHash(a);
    const fast = this.nft.newTransaction();
    // The skeleton's rules every time (a flushed table or chain keeps the rest); the table, maps
    // and chains are declared only when nft reports them missing: half the cost of an ADD. Keys
    // an earlier ADD recorded are asserted as this attachment's (a repeated ADD: no listing); its
    // class elements in another class than the config's go in the same run, with their owner
    // elements (which fails unless they are still its own).
    writeSkeletonRules(fast);
    for (const e of moved) fast.delete(keyOnly(e)).delete(ownerElement(e, hash));
    ownTransaction(fast, hash, want, "create", recorded);
    let left: Element[];
    try {
      await this.nft.run(fast);
      left = moved;
    } catch (e) {
      if (!isAlreadyExists(e) && !isNotFound(e)) throw e;
      // The skeleton is missing or in the previous layout, or a key exists (another
      // container's, or ours with another value), or a recorded key is not ours any more (taken
      // over, or the earlier ADD never reached nft): under the lock, read the table and write
      // what is missing.
      left = await withFlock(LOCK_FILE, () => this.repair(a, want));
    }
    // Moved out of a class: the record and the note of use follow, and the class goes with its
    // last user.
    await dropUnused(this.nft, forgetMoved(this.records, a, left, want));
    return effects;
  }

  /**
   * The slow path of ADD: skeleton (upgraded from a previous layout), and keys taken over.
   * Returns the attachment's own class elements it moved out of another class.
   */
  private async repair(a: Attachment, want: Desired): Promise<Element[]> {
    let state = await this.state();
    // The layouts before: subnets and conditions are in their chains' rule texts.
    if (state && (isV2(state.sets) || hasOldGuards(state.sets))) state = await this.state({ text: true });
    const tx = this.nft.newTransaction();
    staticTransaction(tx);
    if (state && isLegacy(state.sets)) upgradeTransaction(tx, state.elements, state.sets);
    if (state && isV2(state.sets)) upgradeV2Transaction(tx, state);
    const upgraded = state && hasOldGuards(state.sets) ? upgradeGuardsTransaction(tx, state) : undefined;
    for (const [name, owner] of upgraded?.uses ?? []) this.records.use(name, owner);
    recordUpgraded(this.records, upgraded?.written ?? []);
    const listed = [...(state?.elements ?? []), ...(upgraded?.written ?? [])];
    const have = new Map(listed.map((e) => [keyText(e), e]));
    const [comment, hash] = [nftOwnerComment(a), nftOwnerHash(a)];
    const wantKeys = new Set(want.elements.map(keyText));
    for (const s of want.snatChains) snatChainTransaction(tx, s);
    for (const k of want.classes) condClassTransaction(tx, k);
    for (const e of want.elements) takeOver(tx, have, e, hash, comment);
    // A key taken from a container with conditions loses them (its guarded and class elements),
    // unless this one wants the same.
    const dropped = guardsOf(listed, want.elements).filter((old) => !wantKeys.has(keyText(old)));
    for (const old of dropped) disown(tx, old);
    await this.nft.run(tx);
    return dropped.filter((old) => old.comment === comment && old.map?.startsWith("cond_"));
  }

  /** Ours, else upstream's nftables layout: a container ADDed by upstream's portmap checks too. */
  async check(a: Attachment, spec: PortMapSpec): Promise<string[]> {
    const c: PortMapConf = { ...a, ...spec };
    const ours = await this.checkOwn(c);
    if (ours.length === 0) return ours;
    const upstream = missingInUpstreamLayout(c, await readUpstreamPortmap(this.nft, c.containerId));
    return upstream.length === 0 ? upstream : ours;
  }

  /** What is missing from cni-nft's own table (in the previous layout on a host not yet upgraded). */
  async checkOwn(c: PortMapConf): Promise<string[]> {
    return missingInOwnTable(await this.state({ text: true }), c);
  }

  /**
   * An element or guard chain of its owner in cni-nft's own table. Upstream's nftables layout
   * (which remove() also clears) names only the container: readUpstreamPortmap answers for it.
   */
  async holds(a: Attachment): Promise<boolean> {
    const state = await this.state();
    const [comment, hash] = [nftOwnerComment(a), nftOwnerHash(a)];
    return (
      (state?.elements ?? []).some((e) => e.comment === comment) ||
      (state?.chains ?? []).some((c) => /^guard[46]-/.test(c) && c.endsWith(`-${hash}`))
    );
  }

  /** `ownOnly`: leave upstream's layout alone (a migration removes it only once ours is in place). */
  async remove(a: Attachment, spec?: PortMapSpec, opts: { ownOnly?: boolean } = {}): Promise<Effects> {
    const [udp, upstreamUdp] = await Promise.all([
      removeAttachment(this.own, a, spec),
      opts.ownOnly ? [] : this.removeUpstreamLeftovers(a.containerId),
    ]);
    this.records.remove(nftOwnerHash(a));
    return { udpPorts: [...udp, ...upstreamUdp] };
  }

  async gc(network: string, valid: readonly Attachment[]): Promise<Effects> {
    const stale = staleOwner(network, valid);
    for (const [name, owner] of this.records.uses()) if (stale(owner)) this.records.release(name, owner);
    const udp = await removeListed(this.own, stale, (ch) => stale(ch.replace(/^guard[46]-/, "")), true);
    for (const owner of this.records.owners()) if (stale(owner)) this.records.remove(owner);
    return { udpPorts: udp };
  }

  /**
   * Rules upstream's nftables portmap wrote for this container (tables ip/ip6 cni_hostport, the
   * container ID as comment), so a host moving to cni-nft needs no manual cleanup.
   */
  async removeUpstreamLeftovers(containerId: string): Promise<number[]> {
    const rules = await readUpstreamPortmap(this.nft, containerId);
    await deleteUpstreamRules(this.nft, rules);
    return udpHostPorts(rules);
  }
}
