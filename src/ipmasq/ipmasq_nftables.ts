/**
 * The nftables backend: cni-nft's own table `inet cni_nft_masquerade` (ipmasq_nftables_layout.ts),
 * where an attachment is only its elements, so ADD and DEL cost the same with 10,000 containers
 * as with one, and upstream's table `inet cni_plugins_masquerade` (ipmasq_nftables_upstream.ts),
 * which upstream's plugins and cni-nft before this layout write, read only to CHECK, DEL and GC
 * what is there for an attachment. See docs/bridge-ptp.md.
 *
 * ADD `create`s its elements, so it fails rather than overwrites when a key exists; only then
 * does it take the lock, list the table and take the keys over. A repeated ADD asserts the keys
 * its record names instead (src/hoststate/nft_owners.ts, writeOwned): no listing while they are
 * still its own. DEL deletes each element with its owner element in one transaction
 * (src/hoststate/nft_owners.ts), never reading our table: its keys come from prevResult, else
 * from the record ADD writes before touching nft. It also lists upstream's `masq_checks` (by
 * name; a table of rules only) for rules of its owner.
 */
import { withFlock } from "../cni/lock.js";
import { nftOwnerComment, nftOwnerHash, staleOwner, type Attachment } from "../cni/attachment.js";
import { NO_EFFECTS, type Effects, type HostStateBackend } from "../hoststate/contract.js";
import type { HostTools } from "../hoststate/select.js";
import { staleOwners, type AttachmentRecords } from "../hoststate/records.js";
import {
  deleteOwned,
  listTableIfExists,
  keyOnly,
  mergedKeys,
  keyText,
  recordedKeys,
  ownerElement,
  takeOver,
  valueText,
  dropUnusedSubnets,
  released,
} from "../hoststate/nft_owners.js";
import {
  applyWithSkeleton,
  missingRules,
  type Element,
  type Interface,
  type SkeletonPlan,
} from "../nftables/index.js";
import type { TableState } from "../nftables/dump.js";
import { COMPONENT, type MasqSpec } from "./ipmasq.js";
import {
  declareSkeleton,
  desired,
  ownTransaction,
  subnetChainRules,
  writeSubnetChain,
  MASQ_TABLE,
  type MasqDesired,
} from "./ipmasq_nftables_layout.js";
import {
  deleteUpstreamRules,
  holdsUpstream,
  missingInUpstreamLayout,
  UPSTREAM_MASQ_TABLE,
} from "./ipmasq_nftables_upstream.js";

export { MASQ_TABLE } from "./ipmasq_nftables_layout.js";
export { UPSTREAM_MASQ_CHAIN, UPSTREAM_MASQ_TABLE } from "./ipmasq_nftables_upstream.js";

/** Serialises take-overs (read, then write) with DEL and GC (see docs/bridge-ptp.md). */
export const MASQ_LOCK_FILE = "/run/cni-nft-masquerade.lock";

/** What an attachment's record holds: the keys and the subnet chains its ADDs wrote. */
interface MasqRecord {
  elements: Element[];
  chains: string[];
}

function isRecord(x: unknown): x is MasqRecord {
  const r = x as Partial<MasqRecord> | undefined;
  return Array.isArray(r?.elements) && Array.isArray(r?.chains);
}

/** The subnet counter a listed masq4/masq6 element names. */
function subnetOfElement(e: Element): string[] {
  const v = e.value?.[0];
  return v !== undefined && /^masq[46]$/.test(e.map ?? "") ? [v.replace(/^"(.*)"$/, "$1")] : [];
}

export class NftablesMasq implements HostStateBackend<MasqSpec> {
  readonly component = COMPONENT;
  readonly name = "nftables";
  /** `nft`: the Interface of table inet cni_nft_masquerade (upstream's through forTable). */
  constructor(
    readonly nft: Interface,
    private readonly tools: HostTools,
    private readonly records: AttachmentRecords,
  ) {}

  present(): boolean {
    return this.tools.has("nft");
  }

  /** Upstream's table (and cni-nft's before its own). */
  get upstream(): Interface {
    return this.nft.forTable("inet", UPSTREAM_MASQ_TABLE);
  }

  /** Our table in one nft run, or undefined when it does not exist. */
  private state(opts: { text?: boolean } = {}): Promise<TableState | undefined> {
    return listTableIfExists(this.nft, opts);
  }

  /**
   * Remembers what this ADD is about to write (merged with what earlier ADDs wrote, so a DEL
   * finds all of it), and returns the keys earlier ADDs wrote that this one does not want, and
   * those it writes again (`recorded`: asserted as its own, not created).
   */
  private remember(a: Attachment, want: MasqDesired): MasqRecord & { recorded: Set<string> } {
    const hash = nftOwnerHash(a);
    const old = this.records.read(hash);
    const elements = mergedKeys(isRecord(old) ? old.elements : [], want.elements);
    const chains = new Set([...(isRecord(old) ? old.chains : []), ...want.chains.map((c) => c.chain)]);
    this.records.write(hash, { elements, chains: [...chains] } satisfies MasqRecord);
    for (const c of want.chains) this.records.use(c.chain, hash);
    const wanted = new Set(want.elements.map(keyText));
    return {
      elements: isRecord(old) ? old.elements.filter((e) => !wanted.has(keyText(e))) : [],
      chains: isRecord(old) ? old.chains.filter((c) => !want.chains.some((w) => w.chain === c)) : [],
      recorded: recordedKeys(isRecord(old) ? old.elements : [], want.elements),
    };
  }

  /**
   * The transactions of an ADD, after writing its record. Fast: the base chain's rules, the
   * subnet chains and the elements; full: the skeleton's declarations too (when nft reports
   * them missing); repair: when a key exists (see the header).
   */
  async plan(a: Attachment, s: MasqSpec): Promise<SkeletonPlan> {
    const want = desired(a, s);
    const hash = nftOwnerHash(a);
    const earlier = this.remember(a, want);
    // A repeated ADD with other addresses: the earlier ones go first (only while still its own).
    if (earlier.elements.length)
      await withFlock(MASQ_LOCK_FILE, () =>
        deleteOwned(this.nft, hash, earlier.elements).then(() =>
          dropUnusedSubnets(this.nft, released(this.records, hash, earlier.chains)),
        ),
      );
    // A repeated ADD asserts the keys it recorded (no listing while they are its own); the full
    // transaction creates them, for a table that was missing or flushed.
    const fast = this.nft.newTransaction();
    ownTransaction(fast, hash, want, earlier.recorded);
    const full = this.nft.newTransaction();
    declareSkeleton(full);
    ownTransaction(full, hash, want);
    return {
      fast: [fast],
      full: [full],
      repair: () => withFlock(MASQ_LOCK_FILE, () => this.repair(a, want)),
    };
  }

  async setUp(a: Attachment, s: MasqSpec): Promise<Effects> {
    await applyWithSkeleton(this.nft, await this.plan(a, s));
    return NO_EFFECTS;
  }

  /** The slow path of ADD: the skeleton, and the keys taken over (ours from an earlier ADD, or another container's). */
  private async repair(a: Attachment, want: MasqDesired): Promise<void> {
    const state = await this.state();
    const have = new Map(
      [...(state?.elements.values() ?? [])].flat().map((e): [string, Element] => [keyText(e), e]),
    );
    const tx = this.nft.newTransaction();
    declareSkeleton(tx);
    for (const c of want.chains) writeSubnetChain(tx, c);
    const [hash, comment] = [nftOwnerHash(a), nftOwnerComment(a)];
    for (const e of want.elements) takeOver(tx, have, e, hash, comment);
    await this.nft.run(tx);
  }

  /**
   * DEL: the attachment's elements by their keys (from prevResult and its record), write-only;
   * `ownOnly` leaves upstream's table alone (a migration removes that only once ours is whole).
   * Without prevResult and record nothing of it can be in our table (ADD writes the record
   * first); GC removes what a lost record leaves.
   */
  async remove(a: Attachment, spec?: MasqSpec, opts: { ownOnly?: boolean } = {}): Promise<Effects> {
    const hash = nftOwnerHash(a);
    await Promise.all([
      this.removeOwn(a, spec),
      opts.ownOnly ? undefined : deleteUpstreamRules(this.upstream, (c) => c.startsWith(hash)),
    ]);
    this.records.remove(hash);
    return NO_EFFECTS;
  }

  private async removeOwn(a: Attachment, spec?: MasqSpec): Promise<void> {
    const want = spec ? desired(a, spec) : { elements: [], chains: [] };
    const rec = this.records.read(nftOwnerHash(a));
    const keys = new Map<string, Element>();
    for (const e of [...want.elements.map(keyOnly), ...(isRecord(rec) ? rec.elements : [])])
      keys.set(keyText(e), e);
    const shared = [...want.chains.map((c) => c.chain), ...(isRecord(rec) ? rec.chains : [])];
    if (keys.size === 0) return;
    const hash = nftOwnerHash(a);
    const gone = await withFlock(MASQ_LOCK_FILE, () => deleteOwned(this.nft, hash, [...keys.values()]));
    const unused = released(this.records, hash, shared);
    if (gone) await dropUnusedSubnets(this.nft, unused);
  }

  /** Elements of this network's attachments not in `valid`, from one listing; then upstream's rules. */
  async gc(network: string, valid: readonly Attachment[]): Promise<Effects> {
    const stale = staleOwner(network, valid);
    await withFlock(MASQ_LOCK_FILE, async () => {
      const state = await this.state();
      if (!state) return;
      const gone = [...state.elements.values()]
        .flat()
        .filter((e) => e.comment !== undefined && stale(e.comment));
      for (const [name, owner] of this.records.uses()) if (stale(owner)) this.records.release(name, owner);
      if (gone.length) {
        const tx = this.nft.newTransaction();
        for (const e of gone) tx.delete(keyOnly(e));
        await this.nft.run(tx);
      }
      // The subnets of what went, and any other no attachment is noted to use (a DEL killed
      // between its elements and its chains leaves them).
      const used = new Set(this.records.uses().map(([name]) => name));
      const idle = state.chains.map((c) => c.name).filter((c) => /^masq[46]-/.test(c) && !used.has(c));
      await dropUnusedSubnets(this.nft, [...gone.flatMap(subnetOfElement), ...idle]);
    });
    await deleteUpstreamRules(this.upstream, stale);
    for (const owner of staleOwners(this.records, network, valid)) this.records.remove(owner);
    return NO_EFFECTS;
  }

  /** An element of its owner in our table, or a rule of its owner in upstream's. */
  async holds(a: Attachment): Promise<boolean> {
    return (await this.holdsOwn(a)) || (await holdsUpstream(this.upstream, a));
  }

  async holdsOwn(a: Attachment): Promise<boolean> {
    const comment = nftOwnerComment(a);
    const state = await this.state();
    return [...(state?.elements.values() ?? [])].flat().some((e) => e.comment === comment);
  }

  /** Ours, else upstream's layout: a container added by upstream or before the upgrade checks too. */
  async check(a: Attachment, s: MasqSpec): Promise<string[]> {
    const ours = await this.checkOwn(a, s);
    if (ours.length === 0) return ours;
    const upstream = await missingInUpstreamLayout(this.upstream, a, s.addresses);
    return upstream.length === 0 ? upstream : ours;
  }

  /** What is missing from our table: the skeleton's rules, the subnet chains, each element and its owner element. */
  async checkOwn(a: Attachment, s: MasqSpec): Promise<string[]> {
    const table = `inet ${MASQ_TABLE}`;
    const state = await this.state({ text: true });
    if (!state) return [`table ${table}`];
    const want = desired(a, s);
    const have = new Map([...state.elements.values()].flat().map((e): [string, Element] => [keyText(e), e]));
    const chains = state.chains.map((c) => c.name);
    const missing = missingRules({ chains, rules: state.rules }, want.chains.map(subnetChainRules), table);
    const hash = nftOwnerHash(a);
    const wrong = (e: Element): boolean => {
      const old = have.get(keyText(e));
      return !old || old.comment !== e.comment || valueText(old) !== valueText(e);
    };
    for (const e of want.elements)
      if (wrong(e)) missing.push(`element ${e.key[0]} : ${e.value![0]} of map ${e.map} in table ${table}`);
      else if (wrong(ownerElement(e, hash, e.comment)))
        missing.push(`the owner element of ${e.key[0]} in set owners of table ${table}`);
    return missing;
  }
}
