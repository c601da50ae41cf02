/**
 * What portmap's nftables backend keeps beside the ruleset per attachment (src/hoststate/records.ts):
 * the keys its ADDs are about to write, the chains of its own (guard chains of the layout before
 * classes) and the shared ones its elements name (subnet chains, classes), each shared one also
 * as a note of use. A DEL whose config carries no mappings takes its keys from here, in the
 * current layout's names whatever layout wrote them.
 */
import { nftOwnerHash, ownerHashOf, type Attachment } from "../../../src/cni/attachment.js";
import { keyText, mergedKeys, recordedKeys, released } from "../../../src/hoststate/nft_owners.js";
import type { AttachmentRecords } from "../../../src/hoststate/index.js";
import type { Element } from "../../../src/nftables/index.js";
import { currentGuardNames } from "./portmap_nftables_guards.js";
import type { Desired } from "./portmap_nftables_layout.js";
import { classOfMap, guardKind } from "./portmap_nftables_state.js";
import { currentRecordNames } from "./portmap_nftables_v2.js";

interface PortmapRecord {
  elements: Element[];
  chains: string[];
  shared?: string[];
}

function isRecord(x: unknown): x is PortmapRecord {
  const r = x as Partial<PortmapRecord> | undefined;
  return Array.isArray(r?.elements) && Array.isArray(r?.chains);
}

/** The shared chains an attachment's elements name: its subnets' and its classes'. */
export function sharedNames(want: Pick<Desired, "snatChains" | "classes">): string[] {
  return [...want.snatChains.map((x) => x.chain), ...want.classes.map((k) => k.name)];
}

/**
 * Remembers what this ADD is about to write (merged with what earlier ADDs wrote), and returns
 * the keys of it an earlier ADD recorded (a repeated ADD asserts those instead of creating them)
 * and the class elements an earlier ADD recorded for a mapping this one puts in another class
 * (its conditions changed, or the upgrade from guard chains named the class after nft's text of
 * them): the ADD deletes those in its own transaction, then {@link forgetMoved}.
 */
export function remember(
  records: AttachmentRecords,
  a: Attachment,
  want: Desired,
): { recorded: Set<string>; moved: Element[] } {
  const hash = nftOwnerHash(a);
  const old = recorded(records, hash);
  const shared = new Set([...old.shared, ...sharedNames(want)]);
  records.write(hash, {
    elements: mergedKeys(old.elements, want.elements),
    chains: old.chains,
    shared: [...shared],
  } satisfies PortmapRecord);
  for (const name of sharedNames(want)) records.use(name, hash);
  const wanted = new Map(want.elements.filter(isClassElement).map((e) => [guardKind(e), e.map]));
  const moved = old.elements.filter(
    (e) => isClassElement(e) && wanted.has(guardKind(e)) && wanted.get(guardKind(e)) !== e.map,
  );
  return { recorded: recordedKeys(old.elements, want.elements), moved };
}

const isClassElement = (e: Element): boolean => e.map?.startsWith("cond_") ?? false;

/**
 * After an ADD that moved `moved` (its own class elements) out of their classes: the record
 * without them, and its notes of use of those classes dropped unless it still wants them.
 * Returns the classes no attachment is noted to use any more (for the caller to drop).
 */
export function forgetMoved(
  records: AttachmentRecords,
  a: Attachment,
  moved: readonly Element[],
  want: Desired,
): string[] {
  if (moved.length === 0) return [];
  const hash = nftOwnerHash(a);
  const rec = recorded(records, hash);
  const gone = new Set(moved.map(keyText));
  const keep = new Set(sharedNames(want));
  const classes = [...new Set(moved.map((e) => classOfMap(e.map!)))].filter((c) => !keep.has(c));
  records.write(hash, {
    elements: rec.elements.filter((e) => !gone.has(keyText(e))),
    chains: rec.chains,
    shared: rec.shared.filter((c) => !classes.includes(c)),
  } satisfies PortmapRecord);
  return released(records, hash, classes);
}

/**
 * The upgrade from guard chains (portmap_nftables_guards.ts) wrote these class and guarded
 * elements for their owners: each owner that has a record gets them in it, so that its repeated
 * ADD knows where they are. (An owner without a record is found by listing, as before.)
 */
export function recordUpgraded(records: AttachmentRecords, written: readonly Element[]): void {
  const byOwner = new Map<string, Element[]>();
  for (const e of written)
    if (e.comment !== undefined) {
      const owner = ownerHashOf(e.comment);
      byOwner.set(owner, [...(byOwner.get(owner) ?? []), e]);
    }
  for (const [owner, elements] of byOwner) {
    if (records.read(owner) === undefined) continue;
    const rec = recorded(records, owner);
    const classes = elements.filter(isClassElement).map((e) => classOfMap(e.map!));
    records.write(owner, {
      elements: mergedKeys(rec.elements, elements),
      chains: rec.chains,
      shared: [...new Set([...rec.shared, ...classes])],
    } satisfies PortmapRecord);
  }
}

/**
 * The keys, own chains and shared chains the record of `owner` names, in the current layout's
 * names (a record of an earlier layout names its maps and chains); nothing without a record.
 */
export function recorded(
  records: AttachmentRecords,
  owner: string,
): { elements: Element[]; chains: string[]; shared: string[] } {
  const rec = records.read(owner);
  if (!isRecord(rec)) return { elements: [], chains: [], shared: [] };
  return {
    ...currentRecordNames(currentGuardNames(rec.elements), rec.shared ?? []),
    chains: [...new Set(rec.chains)],
  };
}
