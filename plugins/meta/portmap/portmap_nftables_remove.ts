/**
 * DEL and GC of cni-nft's own table, `inet cni_nft_portmap`. DEL deletes the attachment's keys
 * without reading (each element with its owner element, src/hoststate/nft_owners.ts): its keys
 * come from its config and its record. It lists the table only when nothing names its keys, when
 * a guarded key's class element was not among them, or in the interval-set layout (no owner
 * elements: it reads just its keys there). GC lists once. Every path holds the backend's lock (a
 * take-over reads, then writes) and drops the shared chains no attachment is noted to use.
 */
import { withFlock } from "../../../src/cni/index.js";
import { nftOwnerComment, nftOwnerHash, type Attachment } from "../../../src/cni/attachment.js";
import {
  deleteOwned,
  dropChain,
  dropSubnetChain,
  dropUnusedSubnets,
  released,
} from "../../../src/hoststate/nft_owners.js";
import type { AttachmentRecords } from "../../../src/hoststate/index.js";
import { isNotFound, type Element, type Interface } from "../../../src/nftables/index.js";
import { LOCK_FILE, type PortMapConf, type PortMapSpec } from "./config.js";
import { oldGuardChains, withOldGuards } from "./portmap_nftables_guards.js";
import {
  COND_CLASS,
  desired,
  dropCondClass,
  keyOnly,
  keyText,
  type Desired,
} from "./portmap_nftables_layout.js";
import { legacyDesired } from "./portmap_nftables_legacy.js";
import { recorded, sharedNames } from "./portmap_nftables_records.js";
import { guardKind, listState, udpPorts } from "./portmap_nftables_state.js";

/** The table and the records beside it. */
export interface OwnTable {
  nft: Interface;
  records: AttachmentRecords;
}

/**
 * Deletes the subnets' chains and counters (and classes) no element names any more: nft refuses
 * to delete a counter an element names (EBUSY), and the transaction is atomic, so one another
 * container still uses is left whole. Chains or counters already gone are fine.
 */
export function dropUnused(nft: Interface, chains: readonly string[]): Promise<void> {
  return dropUnusedSubnets(nft, chains, (tx, name) =>
    COND_CLASS.test(name) ? dropCondClass(tx, name) : dropSubnetChain(tx, name),
  );
}

/** Drops every note of use of `owner` (a DEL by listing cannot name the shared objects it used). */
function forgetUses(records: AttachmentRecords, owner: string): void {
  for (const [name, user] of records.uses()) if (user === owner) records.release(name, user);
}

/**
 * Deletes the elements and guard chains `owned` selects, under the lock, after listing the
 * table (GC, and DEL of an attachment whose keys nothing names); returns UDP host ports. With
 * `idle` (GC), also the shared chains no attachment is noted to use: a DEL killed between its
 * elements and its chains leaves them.
 */
export function removeListed(
  t: OwnTable,
  owned: (comment: string) => boolean,
  chains: (name: string) => boolean,
  idle = false,
): Promise<number[]> {
  return withFlock(LOCK_FILE, async () => {
    const state = await listState(t.nft);
    if (!state) return [];
    const tx = t.nft.newTransaction();
    const gone = state.elements.filter((e) => e.comment !== undefined && owned(e.comment));
    for (const e of gone) tx.delete(keyOnly(e));
    // Elements first: a guard chain cannot go while a verdict map element jumps to it.
    for (const ch of state.chains) if (/^guard[46]-/.test(ch) && chains(ch)) dropChain(tx, ch);
    await t.nft.run(tx);
    const used = new Set(t.records.uses().map(([name]) => name));
    await dropUnused(t.nft, [
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
 * The attachment's own state: by its keys when its config or record names them, else by listing
 * (its notes of use cannot be named either then: state older than records, or a record lost).
 * Returns the UDP host ports of what went.
 */
export async function removeAttachment(t: OwnTable, a: Attachment, spec?: PortMapSpec): Promise<number[]> {
  const done = await removeKnown(t, a, spec);
  if (done) return done;
  const hash = nftOwnerHash(a);
  forgetUses(t.records, hash);
  const comment = nftOwnerComment(a);
  return removeListed(
    t,
    (c) => c === comment,
    (ch) => ch.endsWith(`-${hash}`),
  );
}

/**
 * This attachment's elements by their keys, from its config and its record: write-only in this
 * layout, by reading just those keys in the interval-set one. DEL of known keys never reads: each
 * element goes with its owner element in one transaction, so one that is not (or no longer) its
 * own makes it fail; nft names the operation, that key is skipped and the rest retried.
 * Undefined when no key is known or the interval-set layout's keys could not decide: the caller
 * lists the table.
 */
async function removeKnown(t: OwnTable, a: Attachment, spec?: PortMapSpec): Promise<number[] | undefined> {
  const want: Pick<Desired, "elements" | "snatChains" | "classes"> = spec
    ? desired({ ...a, ...spec })
    : { elements: [], snatChains: [], classes: [] };
  const hash = nftOwnerHash(a);
  const rec = recorded(t.records, hash);
  const keys = new Map<string, Element>();
  for (const e of [...want.elements.map(keyOnly), ...rec.elements]) keys.set(keyText(e), e);
  // rec.chains: guard chains of the layout before classes (their elements are gone after the upgrade).
  if (keys.size === 0 && rec.chains.length === 0) return undefined;
  const gone = await withFlock(LOCK_FILE, () => deleteOwned(t.nft, hash, [...keys.values()], rec.chains));
  const unused = released(t.records, hash, [...sharedNames(want), ...rec.shared]);
  if (!gone) return spec ? removeLegacyKnown(t.nft, { ...a, ...spec }) : undefined;
  await dropUnused(t.nft, unused);
  // A guarded key whose class element was not among them (an upgraded guard: its class is
  // named after nft's text of the conditions, listedClassElement; or a record without the
  // config): by listing. The upgrade noted that class's use, which no name here gives.
  const classKeys = new Set(gone.filter((e) => e.map?.startsWith("cond_")).map(guardKind));
  if (gone.some((e) => e.set?.startsWith("guarded_") && !classKeys.has(guardKind(e)))) {
    forgetUses(t.records, hash);
    const comment = nftOwnerComment(a);
    return [
      ...udpPorts(gone),
      ...(await removeListed(
        t,
        (c) => c === comment,
        () => false,
      )),
    ];
  }
  return udpPorts(gone);
}

/**
 * The interval-set layout (no owner elements): read just this container's keys, then delete them
 * if they are still its own. Undefined when that cannot decide (no mappings known, a key
 * missing, or a key now owned by another container).
 */
function removeLegacyKnown(nft: Interface, c: PortMapConf): Promise<number[] | undefined> {
  const want = withOldGuards(c, legacyDesired(c));
  if (want.length === 0) return Promise.resolve(undefined);
  const comment = nftOwnerComment(c);
  return withFlock(LOCK_FILE, async () => {
    let found: Element[];
    try {
      found = await nft.getElements(want.map(keyOnly));
    } catch {
      return undefined;
    }
    if (found.length !== want.length || found.some((e) => e.comment !== comment)) return undefined;
    const tx = nft.newTransaction();
    for (const e of want) tx.delete(keyOnly(e));
    for (const ch of oldGuardChains(want)) dropChain(tx, ch);
    try {
      await nft.run(tx);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
    return udpPorts(want);
  });
}
