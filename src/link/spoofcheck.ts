/**
 * bridge's MAC spoof check in a table of its own, `bridge cni_nft_spoofcheck`, where an
 * attachment is only elements, so ADD and DEL cost the same with 5,000 checks as with one and a
 * frame pays two hash lookups whatever the number of containers:
 *
 *   checked (ifname):               <host veth>                  frames from it are checked
 *   allowed (ifname . ether_addr):  <host veth> . <container MAC>  the only source MAC let through
 *   owners: one `owner tag . element tag` element per element (src/hoststate/nft_owners.ts)
 *   prerouting (filter, prerouting, -300, policy accept):
 *       iifname @checked iifname . ether saddr != @allowed drop
 *
 * Upstream's layout (a jump per container in `bridge nat PREROUTING` and two chains per
 * container, src/link/spoofcheck_upstream.ts) grows on every ADD: nft 1.0.6 fetches every chain
 * of every table before it adds a rule, and the kernel validates every jump of the table on the
 * commit. It is still read to CHECK, DEL and GC the checks upstream's bridge (and cni-nft before
 * this table) made. See docs/bridge-ptp.md.
 *
 * ADD writes its record first, then `create`s its elements with their owner elements in the one
 * nft run it shares with masquerade; a repeated ADD asserts the keys its record names; a key that
 * exists (another attachment's, left by a DEL that never came) is taken over under the lock
 * after one listing. DEL deletes its recorded keys with their owner elements, never reading.
 */
import { parseMac } from "../address/index.js";
import { withFlock } from "../cni/lock.js";
import { nftOwnerComment, nftOwnerHash, staleOwner, type Attachment } from "../cni/attachment.js";
import { NO_EFFECTS, type Effects, type HostStateBackend } from "../hoststate/contract.js";
import type { HostTools } from "../hoststate/select.js";
import { staleOwners, type AttachmentRecords } from "../hoststate/records.js";
import {
  declareOwners,
  listTableIfExists,
  deleteOwned,
  disown,
  keyOnly,
  keyText,
  mergedKeys,
  recordedKeys,
  takeOver,
  writeOwned,
  ownerElement,
} from "../hoststate/nft_owners.js";
import {
  applyWithSkeleton,
  ifname,
  missingRules,
  type Element,
  type Interface,
  type SkeletonPlan,
  type Transaction,
} from "../nftables/index.js";
import type { TableState } from "../nftables/dump.js";
import {
  gcUpstreamChecks,
  hasUpstreamCheck,
  holdsUpstream,
  missingInUpstreamLayout,
  removeUpstreamCheck,
  UPSTREAM_SPOOF_TABLE,
} from "./spoofcheck_upstream.js";

export const SPOOF_FAMILY = "bridge";
export const SPOOF_TABLE = "cni_nft_spoofcheck";
/** Serialises take-overs (read, then write) with DEL and GC. */
export const SPOOF_LOCK_FILE = "/run/cni-nft-spoofcheck.lock";
const CHECKED = "checked";
const ALLOWED = "allowed";
const BASE_CHAIN = "prerouting";
export const SPOOF_RULE = `iifname @${CHECKED} iifname . ether saddr != @${ALLOWED} drop`;

export interface SpoofSpec {
  /** The host side of the container's veth. */
  hostVeth: string;
  /** The container interface's MAC, the only source MAC let through. */
  mac: string;
}

/** What an attachment's record holds: the keys its ADDs wrote. */
interface SpoofRecord {
  elements: Element[];
}

const isRecord = (x: unknown): x is SpoofRecord =>
  Array.isArray((x as Partial<SpoofRecord> | undefined)?.elements);

/** The attachment's two elements, with its owner comment. */
export function spoofElements(a: Attachment, s: SpoofSpec): Element[] {
  const mac = parseMac(s.mac);
  if (mac === undefined) throw new Error(`invalid MAC address ${JSON.stringify(s.mac)}`);
  const veth = ifname(s.hostVeth, "hostVeth").text;
  const comment = nftOwnerComment(a);
  return [
    { kind: "element", set: CHECKED, key: [veth], comment },
    { kind: "element", set: ALLOWED, key: [veth, mac], comment },
  ];
}

/** Table, sets and base chain: what the fast transaction assumes. */
export function declareSpoofSkeleton(tx: Transaction): void {
  tx.add({
    kind: "table",
    comment: "MAC spoof check (cni-nft): a host veth's frames only from its container's MAC",
  });
  tx.add({ kind: "set", name: CHECKED, type: "ifname", comment: "host veths whose frames are checked" });
  tx.add({
    kind: "set",
    name: ALLOWED,
    type: "ifname . ether_addr",
    comment: "host veth . the one source MAC it lets through",
  });
  declareOwners(tx);
  tx.add({
    kind: "chain",
    name: BASE_CHAIN,
    type: "filter",
    hook: "prerouting",
    priority: -300,
    policy: "accept",
  });
}

/** The base chain's rule, rewritten by every ADD: one after `nft flush table` repairs it. */
function writeBaseRule(tx: Transaction): void {
  tx.flush({ kind: "chain", name: BASE_CHAIN });
  tx.add({ kind: "rule", chain: BASE_CHAIN, rule: SPOOF_RULE });
}

/** A listed element as a delete names it (nft lists ifname keys without their quotes). */
function listedKey(e: Element): Element {
  if (e.set !== CHECKED && e.set !== ALLOWED) return keyOnly(e);
  const [veth, ...rest] = e.key;
  return { ...keyOnly(e), key: [veth!.startsWith('"') ? veth! : `"${veth!}"`, ...rest] };
}

export class SpoofCheck implements HostStateBackend<SpoofSpec> {
  readonly component = "spoofcheck";
  readonly name = "nftables";
  /**
   * `nft`: the Interface of table bridge cni_nft_spoofcheck. `links`: the host's interface names,
   * for GC of upstream's layout (its table is shared by every network, so a check whose host veth
   * is gone is what is stale).
   */
  constructor(
    readonly nft: Interface,
    private readonly tools: HostTools,
    private readonly links: () => Promise<ReadonlySet<string>>,
    private readonly records: AttachmentRecords,
  ) {}

  present(): boolean {
    return this.tools.has("nft");
  }

  /** Upstream's table `bridge nat`. */
  get upstream(): Interface {
    return this.nft.forTable(SPOOF_FAMILY, UPSTREAM_SPOOF_TABLE);
  }

  private state(opts: { text?: boolean } = {}): Promise<TableState | undefined> {
    return listTableIfExists(this.nft, opts);
  }

  /**
   * The ADD's transactions, after writing its record: fast (the base chain's rule and the
   * elements), full (the skeleton too, when nft reports it missing), repair (a key exists).
   */
  async plan(a: Attachment, s: SpoofSpec): Promise<SkeletonPlan> {
    const want = spoofElements(a, s);
    const hash = nftOwnerHash(a);
    const old = this.records.read(hash);
    const earlier = isRecord(old) ? old.elements : [];
    this.records.write(hash, { elements: mergedKeys(earlier, want) } satisfies SpoofRecord);
    // A repeated ADD with another veth or MAC: the earlier keys go first (only while its own).
    const wanted = new Set(want.map(keyText));
    const dropped = earlier.filter((e) => !wanted.has(keyText(e)));
    if (dropped.length) await withFlock(SPOOF_LOCK_FILE, () => deleteOwned(this.nft, hash, dropped));
    const recorded = recordedKeys(earlier, want);
    const fast = this.nft.newTransaction();
    writeBaseRule(fast);
    for (const e of want) writeOwned(fast, e, hash, recorded);
    const full = this.nft.newTransaction();
    declareSpoofSkeleton(full);
    writeBaseRule(full);
    for (const e of want) writeOwned(full, e, hash, new Set());
    return {
      fast: [fast],
      full: [full],
      repair: () => withFlock(SPOOF_LOCK_FILE, () => this.repair(a, want)),
    };
  }

  async setUp(a: Attachment, s: SpoofSpec): Promise<Effects> {
    await applyWithSkeleton(this.nft, await this.plan(a, s));
    return NO_EFFECTS;
  }

  /** The slow path of ADD: one listing, the keys taken over (an earlier ADD's or another attachment's). */
  private async repair(a: Attachment, want: readonly Element[]): Promise<void> {
    const state = await this.state();
    const listed = [...(state?.elements.values() ?? [])].flat().map((e) => ({ ...e, ...listedKey(e) }));
    const have = new Map(listed.map((e): [string, Element] => [keyText(e), e]));
    const tx = this.nft.newTransaction();
    declareSpoofSkeleton(tx);
    writeBaseRule(tx);
    const [hash, comment] = [nftOwnerHash(a), nftOwnerComment(a)];
    // The veth's MAC of whoever held it before (a container gone without its DEL) goes too.
    const wanted = new Set(want.map(keyText));
    const veth = want[0]!.key[0]!;
    for (const e of listed)
      if (e.set === ALLOWED && e.key[0] === veth && !wanted.has(keyText(e))) disown(tx, e);
    for (const e of want) takeOver(tx, have, e, hash, comment);
    await this.nft.run(tx);
  }

  /**
   * DEL: the recorded keys with their owner elements, write-only. Without a record (a check made
   * by upstream's bridge or by cni-nft before this table, or a DEL again), one listing of the
   * attachment's chain by name says whether upstream's layout holds it, and only then is that read.
   */
  async remove(a: Attachment): Promise<Effects> {
    const hash = nftOwnerHash(a);
    const rec = this.records.read(hash);
    if (isRecord(rec) && rec.elements.length)
      await withFlock(SPOOF_LOCK_FILE, () => deleteOwned(this.nft, hash, rec.elements));
    else if (await hasUpstreamCheck(this.upstream, a)) await removeUpstreamCheck(this.upstream, a);
    this.records.remove(hash);
    return NO_EFFECTS;
  }

  /** This network's elements not in `valid` (one listing), then upstream's layout (see the constructor). */
  async gc(network: string, valid: readonly Attachment[]): Promise<Effects> {
    const stale = staleOwner(network, valid);
    await withFlock(SPOOF_LOCK_FILE, async () => {
      const state = await this.state();
      const gone = [...(state?.elements.values() ?? [])]
        .flat()
        .filter((e) => e.comment !== undefined && stale(e.comment));
      if (gone.length === 0) return;
      const tx = this.nft.newTransaction();
      for (const e of gone) tx.delete(listedKey(e));
      await this.nft.run(tx);
    });
    await gcUpstreamChecks(this.upstream, valid, this.links);
    for (const owner of staleOwners(this.records, network, valid)) this.records.remove(owner);
    return NO_EFFECTS;
  }

  /** An element of its owner in our table, or upstream's chains or jump. */
  async holds(a: Attachment): Promise<boolean> {
    const comment = nftOwnerComment(a);
    const state = await this.state();
    const ours = [...(state?.elements.values() ?? [])].flat().some((e) => e.comment === comment);
    return ours || (await holdsUpstream(this.upstream, a));
  }

  /** Ours, else upstream's layout: a container upstream (or cni-nft before this table) added checks too. */
  async check(a: Attachment, s: SpoofSpec): Promise<string[]> {
    const ours = await this.checkOwn(a, s);
    if (ours.length === 0) return ours;
    const upstream = await missingInUpstreamLayout(this.upstream, a, s.mac);
    return upstream.length === 0 ? upstream : ours;
  }

  /** What our table lacks: the base chain's rule, each element and its owner element. */
  async checkOwn(a: Attachment, s: SpoofSpec): Promise<string[]> {
    const table = `${SPOOF_FAMILY} ${SPOOF_TABLE}`;
    const state = await this.state({ text: true });
    if (!state) return [`spoof-check table ${table}`];
    const chains = state.chains.map((c) => c.name);
    const missing = missingRules(
      { chains, rules: state.rules },
      [{ chain: BASE_CHAIN, rules: [SPOOF_RULE] }],
      table,
    );
    const listed = [...state.elements.values()].flat();
    const have = new Map(listed.map((e): [string, Element] => [keyText(e), e]));
    const hash = nftOwnerHash(a);
    const comment = nftOwnerComment(a);
    for (const e of spoofElements(a, s)) {
      const what = `${e.key.join(" . ")} in set ${e.set} of table ${table}`;
      if (have.get(keyText(e))?.comment !== comment) missing.push(`spoof-check element ${what}`);
      else if (have.get(keyText(ownerElement(e, hash)))?.comment !== comment)
        missing.push(`the owner element of ${what}`);
    }
    return missing;
  }
}
