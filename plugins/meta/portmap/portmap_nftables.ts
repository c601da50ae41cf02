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
 * elements too). DEL deletes each element together with its owner element in one transaction: a
 * key taken over by another container has another owner element, so the transaction fails and
 * that key is skipped. DEL therefore never reads nft (every read costs O(table) in nft 1.0.6,
 * which fetches every element of the table first); its keys come from its config, else from the
 * attachment's record (src/hoststate/records.ts) that ADD writes before touching nft.
 */
import { withFlock } from "../../../src/cni/index.js";
import { nftOwnerComment, nftOwnerHash, staleOwner, type Attachment } from "../../../src/cni/attachment.js";
import {
  deleteOwned,
  disown,
  dropChain,
  dropSubnetChain,
  dropUnusedSubnets,
  released,
} from "../../../src/hoststate/nft_owners.js";
import type {
  AttachmentRecords,
  Effects,
  HostStateBackend,
  HostTools,
} from "../../../src/hoststate/index.js";
import {
  isAlreadyExists,
  isNotFound,
  missingRules,
  type Element,
  type Interface,
  type Rule,
  type Transaction,
} from "../../../src/nftables/index.js";
import {
  deleteUpstreamRules,
  missingInUpstreamLayout,
  readUpstreamPortmap,
  udpHostPorts,
} from "./portmap_nftables_upstream.js";
import {
  condClassTransaction,
  desired,
  dropCondClass,
  keyOnly,
  COND_CLASS,
  keyText,
  ownerElement,
  skeletonRules,
  snatChainRules,
  ownTransaction,
  snatChainTransaction,
  staticTransaction,
  writeSkeletonRules,
  valueText,
  NFT_TABLE,
  OWNERS_SET,
  type Desired,
} from "./portmap_nftables_layout.js";
import { isLegacy, legacyDesired, upgradeTransaction } from "./portmap_nftables_legacy.js";
import {
  currentGuardNames,
  hasOldGuards,
  oldGuardChains,
  upgradeGuardsTransaction,
  withOldGuards,
} from "./portmap_nftables_guards.js";
import { currentRecordNames, isV2, upgradeV2Transaction, v2Desired } from "./portmap_nftables_v2.js";
import { LOCK_FILE, type PortMapConf, type PortMapSpec } from "./config.js";

export { NFT_TABLE, desired, names } from "./portmap_nftables_layout.js";

interface TableState {
  elements: Element[];
  chains: string[];
  sets: string[];
  rules: Map<string, Rule[]>;
}

/**
 * What an attachment's record holds: the keys its ADDs wrote, its own chains (guard chains of
 * the layout before classes) and the shared ones its elements name (subnet chains, classes).
 */
interface PortmapRecord {
  elements: Element[];
  chains: string[];
  shared?: string[];
}

/** UDP host ports of dnat elements (for the conntrack flush). */
function udpPorts(elements: readonly Element[]): number[] {
  const ports = elements
    .filter((e) => e.map?.startsWith("dnat_") && e.key.at(-2) === "udp")
    .map((e) => Number(e.key.at(-1)));
  return [...new Set(ports)];
}

/** A dnat, guarded or class element's kind, family and key: alike for the three of one mapping. */
function guardKind(x: Element): string {
  const kind =
    /^(?:dnat_|guarded_)(ip|any)([46])$/.exec(x.map ?? x.set ?? "") ??
    /^cond_(ip|any)([46])-/.exec(x.map ?? "");
  return `${kind?.[1]}${kind?.[2]} ${keyText({ ...x, map: "", set: "" })}`;
}

/** Listed guarded and class elements of the dnat keys among `elements`. */
function guardsOf(listed: readonly Element[], elements: readonly Element[]): Element[] {
  const keys = new Set(elements.filter((e) => e.map?.startsWith("dnat_")).map(guardKind));
  return listed.filter(
    (x) => (x.set?.startsWith("guarded_") || x.map?.startsWith("cond_")) && keys.has(guardKind(x)),
  );
}

/** The shared chains an attachment's elements name: its subnets' and its classes'. */
function sharedNames(want: Desired): string[] {
  return [...want.snatChains.map((x) => x.chain), ...want.classes.map((k) => k.name)];
}

function isRecord(x: unknown): x is PortmapRecord {
  const r = x as Partial<PortmapRecord> | undefined;
  return Array.isArray(r?.elements) && Array.isArray(r?.chains);
}

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

  /**
   * Everything in our table in one nft run (rule texts in a second, with `text`), or undefined
   * when the table does not exist.
   */
  async state(opts: { text?: boolean } = {}): Promise<TableState | undefined> {
    try {
      const t = await this.nft.listTable(opts);
      return {
        elements: [...t.elements.values()].flat(),
        chains: t.chains.map((c) => c.name),
        sets: t.sets.map((x) => x.name),
        rules: t.rules,
      };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  private own(tx: Transaction, a: Attachment, want: Desired, verb: "create" | "add"): void {
    ownTransaction(tx, nftOwnerHash(a), want, verb);
  }

  /** Remembers what this ADD is about to write (merged with what earlier ADDs wrote). */
  private remember(a: Attachment, want: Desired): void {
    const hash = nftOwnerHash(a);
    const old = this.records.read(hash);
    const elements = new Map<string, Element>();
    for (const e of [...(isRecord(old) ? old.elements : []), ...want.elements.map(keyOnly)])
      elements.set(keyText(e), e);
    const chains = new Set(isRecord(old) ? old.chains : []);
    const shared = new Set([...((isRecord(old) && old.shared) || []), ...sharedNames(want)]);
    this.records.write(hash, {
      elements: [...elements.values()],
      chains: [...chains],
      shared: [...shared],
    } satisfies PortmapRecord);
    for (const name of sharedNames(want)) this.records.use(name, hash);
  }

  async setUp(a: Attachment, spec: PortMapSpec): Promise<Effects> {
    const c: PortMapConf = { ...a, ...spec };
    const want = desired(c);
    const effects: Effects = { udpPorts: udpPorts(want.elements) };
    if (want.elements.length === 0) return effects;
    this.remember(a, want);
    const fast = this.nft.newTransaction();
    // The skeleton's rules every time (a flushed table or chain keeps the rest); the table, maps
    // and chains are declared only when nft reports them missing: half the cost of an ADD.
    writeSkeletonRules(fast);
    this.own(fast, a, want, "create");
    try {
      await this.nft.run(fast);
      return effects;
    } catch (e) {
      if (!isAlreadyExists(e) && !isNotFound(e)) throw e;
    }
    // The skeleton is missing or in the previous layout, or a key exists (ours from a repeated
    // ADD, or another container's): under the lock, read the table and write what is missing.
    await withFlock(LOCK_FILE, () => this.repair(a, want));
    return effects;
  }

  /** The slow path of ADD: skeleton (upgraded from a previous layout), and keys taken over. */
  private async repair(a: Attachment, want: Desired): Promise<void> {
    let state = await this.state();
    // The layouts before: subnets and conditions are in their chains' rule texts.
    if (state && (isV2(state.sets) || hasOldGuards(state.sets))) state = await this.state({ text: true });
    const tx = this.nft.newTransaction();
    staticTransaction(tx);
    if (state && isLegacy(state.sets)) upgradeTransaction(tx, state.elements, state.sets);
    if (state && isV2(state.sets)) upgradeV2Transaction(tx, state);
    const upgraded = state && hasOldGuards(state.sets) ? upgradeGuardsTransaction(tx, state) : undefined;
    for (const [name, owner] of upgraded?.uses ?? []) this.records.use(name, owner);
    const listed = [...(state?.elements ?? []), ...(upgraded?.written ?? [])];
    const have = new Map(listed.map((e) => [keyText(e), e]));
    const comment = nftOwnerComment(a);
    const hash = nftOwnerHash(a);
    const wantKeys = new Set(want.elements.map(keyText));
    for (const s of want.snatChains) snatChainTransaction(tx, s);
    for (const k of want.classes) condClassTransaction(tx, k);
    for (const e of want.elements) {
      const old = have.get(keyText(e));
      tx.add(ownerElement(e, hash, comment));
      if (old && old.comment === comment && valueText(old) === valueText(e)) continue;
      if (old) disown(tx, old);
      tx.add(e);
    }
    // A key taken from a container with conditions loses them (its guarded and class elements),
    // unless this one wants the same.
    for (const old of guardsOf(listed, want.elements)) if (!wantKeys.has(keyText(old))) disown(tx, old);
    await this.nft.run(tx);
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
    const state = await this.state({ text: true });
    if (!state) return [`table inet ${NFT_TABLE}`];
    const have = new Map(state.elements.map((e) => [keyText(e), e]));
    const want = desired(c);
    const old = hasOldGuards(state.sets);
    const legacy = isLegacy(state.sets) || isV2(state.sets) || old;
    // The shared skeleton first: with its rules gone (a flushed table or chain) no element works.
    const missing = legacy
      ? []
      : missingRules(
          state,
          // Class chains: by name below (nft lists conditions in its own words).
          [...skeletonRules(), ...want.snatChains.map(snatChainRules)],
          `inet ${NFT_TABLE}`,
        );
    const hash = nftOwnerHash(c);
    const wrong = (e: Element): boolean => {
      const old = have.get(keyText(e));
      return !old || old.comment !== e.comment || valueText(old) !== valueText(e);
    };
    const layout = isLegacy(state.sets) ? legacyDesired(c) : isV2(state.sets) ? v2Desired(c) : want.elements;
    const expected = old ? withOldGuards(c, layout) : layout;
    for (const e of expected) {
      if (wrong(e))
        missing.push(`element ${e.key.join(" . ")} of ${e.map ?? e.set} in table inet ${NFT_TABLE}`);
      else if (!legacy && wrong(ownerElement(e, hash, e.comment)))
        missing.push(
          `the owner element of ${e.key.join(" . ")} of ${e.map} in set ${OWNERS_SET} of table inet ${NFT_TABLE}`,
        );
    }
    // (subnet chains: missingRules above reports a missing one)
    const chains = old ? oldGuardChains(expected) : want.classes.flatMap((k) => [k.name, `${k.name}-out`]);
    for (const ch of chains)
      if (!state.chains.includes(ch)) missing.push(`chain ${ch} in table inet ${NFT_TABLE}`);
    return missing;
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

  /**
   * Deletes the elements and guard chains `owned` selects, under the lock, after listing the
   * table (GC, and DEL of an attachment whose keys nothing names); returns UDP host ports.
   */
  private async removeOwned(
    owned: (comment: string) => boolean,
    chains: (name: string) => boolean,
    idle = false,
  ): Promise<number[]> {
    return withFlock(LOCK_FILE, async () => {
      const state = await this.state();
      if (!state) return [];
      const tx = this.nft.newTransaction();
      const gone = state.elements.filter((e) => e.comment !== undefined && owned(e.comment));
      for (const e of gone) tx.delete(keyOnly(e));
      // Elements first: a guard chain cannot go while a verdict map element jumps to it.
      for (const ch of state.chains) if (/^guard[46]-/.test(ch) && chains(ch)) dropChain(tx, ch);
      await this.nft.run(tx);
      // With `idle` (GC), also the subnet chains no attachment is noted to use: a DEL killed
      // between its elements and its chains leaves them.
      const used = new Set(this.records.uses().map(([name]) => name));
      await this.dropUnused([
        ...new Set(
          gone.flatMap((e) =>
            (e.map?.startsWith("snat_sub") || e.map?.startsWith("cond_")) && e.value?.[0]
              ? [e.value[0].replace(/^"(.*)"$/, "$1")]
              : ((e.value?.[0] ?? "").match(/^jump (snat[46]-\S+)$/)?.[1] ?? []),
          ),
        ),
        ...(idle
          ? state.chains.filter((c) => (/^snat_sub[46]-/.test(c) || COND_CLASS.test(c)) && !used.has(c))
          : []),
      ]);
      return udpPorts(gone);
    });
  }

  /**
   * DEL of known keys without reading: each element goes with its owner element in one
   * transaction, so an element that is not (or no longer) ours makes it fail; nft names the
   * operation, that key is skipped and the rest retried. Undefined when the table is not in this
   * layout (missing, or the previous one): the caller then reads.
   */
  private removeKeys(
    a: Attachment,
    keys: readonly Element[],
    chains: readonly string[],
  ): Promise<Element[] | undefined> {
    return withFlock(LOCK_FILE, () => deleteOwned(this.nft, nftOwnerHash(a), keys, chains));
  }

  /**
   * Deletes the subnets' chains and counters no snat element names any more: nft refuses to
   * delete a counter an element names (EBUSY; a chain of the previous layout, one an element
   * jumps to), and the transaction is atomic, so a subnet another container still uses is left
   * whole. Chains or counters already gone are fine.
   */
  private dropUnused(chains: readonly string[]): Promise<void> {
    return dropUnusedSubnets(this.nft, chains, (tx, name) =>
      COND_CLASS.test(name) ? dropCondClass(tx, name) : dropSubnetChain(tx, name),
    );
  }

  /** `ownOnly`: leave upstream's layout alone (a migration removes it only once ours is in place). */
  async remove(a: Attachment, spec?: PortMapSpec, opts: { ownOnly?: boolean } = {}): Promise<Effects> {
    const comment = nftOwnerComment(a);
    const hash = nftOwnerHash(a);
    const [udp, upstreamUdp] = await Promise.all([
      this.removeOwn(a, spec).then((done) => {
        if (done) return done;
        // Nothing names its keys: its notes of use cannot be named either (rare: state older
        // than records, or a record lost).
        for (const [name, owner] of this.records.uses())
          if (owner === hash) this.records.release(name, owner);
        return this.removeOwned(
          (c) => c === comment,
          (ch) => ch.endsWith(`-${hash}`),
        );
      }),
      opts.ownOnly ? [] : this.removeUpstreamLeftovers(a.containerId),
    ]);
    this.records.remove(hash);
    return { udpPorts: [...udp, ...upstreamUdp] };
  }

  /**
   * This attachment's elements by their keys, from its config and its record: write-only in this
   * layout, by reading just those keys in the previous one. Undefined when no key is known or the
   * previous layout's keys could not decide: the caller lists the table.
   */
  private async removeOwn(a: Attachment, spec?: PortMapSpec): Promise<number[] | undefined> {
    const want: Pick<Desired, "elements" | "snatChains" | "classes"> = spec
      ? desired({ ...a, ...spec })
      : { elements: [], snatChains: [], classes: [] };
    const hash = nftOwnerHash(a);
    const rec = this.records.read(hash);
    const recorded = isRecord(rec)
      ? currentRecordNames(currentGuardNames(rec.elements), rec.shared ?? [])
      : { elements: [], shared: [] };
    const keys = new Map<string, Element>();
    for (const e of [...want.elements.map(keyOnly), ...recorded.elements]) keys.set(keyText(e), e);
    // Guard chains of the layout before classes (their elements are gone after the upgrade).
    const chains = new Set(isRecord(rec) ? rec.chains : []);
    if (keys.size === 0 && chains.size === 0) return undefined;
    const gone = await this.removeKeys(a, [...keys.values()], [...chains]);
    const unused = released(this.records, hash, [...sharedNames(want), ...recorded.shared]);
    if (gone) {
      await this.dropUnused(unused);
      // A guarded key whose class element was not among them (an upgraded guard: its class is
      // named after nft's text of the conditions, or a record without the config): by listing.
      const classKeys = new Set(gone.filter((e) => e.map?.startsWith("cond_")).map(guardKind));
      if (gone.some((e) => e.set?.startsWith("guarded_") && !classKeys.has(guardKind(e)))) {
        const comment = nftOwnerComment(a);
        return [
          ...udpPorts(gone),
          ...(await this.removeOwned(
            (c) => c === comment,
            () => false,
          )),
        ];
      }
      return udpPorts(gone);
    }
    return spec ? this.removeLegacyKnown({ ...a, ...spec }) : undefined;
  }

  /**
   * The previous layout (no owner elements): read just this container's keys, then delete them
   * if they are still its own. Undefined when that cannot decide (no mappings known, a key
   * missing, or a key now owned by another container).
   */
  private async removeLegacyKnown(c: PortMapConf): Promise<number[] | undefined> {
    const want = withOldGuards(c, legacyDesired(c));
    if (want.length === 0) return undefined;
    const comment = nftOwnerComment(c);
    return withFlock(LOCK_FILE, async () => {
      let found: Element[];
      try {
        found = await this.nft.getElements(want.map(keyOnly));
      } catch {
        return undefined;
      }
      if (found.length !== want.length || found.some((e) => e.comment !== comment)) return undefined;
      const tx = this.nft.newTransaction();
      for (const e of want) tx.delete(keyOnly(e));
      for (const ch of oldGuardChains(want)) dropChain(tx, ch);
      try {
        await this.nft.run(tx);
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
      return udpPorts(want);
    });
  }

  async gc(network: string, valid: readonly Attachment[]): Promise<Effects> {
    const stale = staleOwner(network, valid);
    for (const [name, owner] of this.records.uses()) if (stale(owner)) this.records.release(name, owner);
    const udp = await this.removeOwned(stale, (ch) => stale(ch.replace(/^guard[46]-/, "")), true);
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
