/**
 * What portmap's nftables backend keeps beside the ruleset per attachment (src/hoststate/records.ts):
 * the keys its ADDs are about to write, the chains of its own (guard chains of the layout before
 * classes) and the shared ones its elements name (subnet chains, classes), each shared one also
 * as a note of use. A DEL whose config carries no mappings takes its keys from here, in the
 * current layout's names whatever layout wrote them.
 */
import { nftOwnerHash, type Attachment } from "../../../src/cni/attachment.js";
import { mergedKeys, recordedKeys } from "../../../src/hoststate/nft_owners.js";
import type { AttachmentRecords } from "../../../src/hoststate/index.js";
import type { Element } from "../../../src/nftables/index.js";
import { currentGuardNames } from "./portmap_nftables_guards.js";
import type { Desired } from "./portmap_nftables_layout.js";
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
 * the keys of it an earlier ADD recorded (a repeated ADD asserts those instead of creating them).
 */
export function remember(records: AttachmentRecords, a: Attachment, want: Desired): Set<string> {
  const hash = nftOwnerHash(a);
  const old = records.read(hash);
  const shared = new Set([...((isRecord(old) && old.shared) || []), ...sharedNames(want)]);
  records.write(hash, {
    elements: mergedKeys(isRecord(old) ? old.elements : [], want.elements),
    chains: isRecord(old) ? [...new Set(old.chains)] : [],
    shared: [...shared],
  } satisfies PortmapRecord);
  for (const name of sharedNames(want)) records.use(name, hash);
  return recordedKeys(isRecord(old) ? old.elements : [], want.elements);
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
