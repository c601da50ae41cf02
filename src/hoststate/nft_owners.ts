/**
 * Ownership per element in a flat nftables layout (portmap's and masquerade's tables): every
 * element of an attachment has a twin in the set `owners`, keyed `owner tag . element tag`, and
 * both carry the attachment's owner comment. Nothing else in nft says "delete this key, but only
 * if it is still container A's": deleting the element together with its twin in one transaction
 * does, because the twin exists only while the element is A's (a take-over by another
 * container replaced it), so the kernel checks ownership in the very commit that deletes. That
 * is why DEL never has to read the table (every nft read is O(table) in nft 1.0.6).
 */
import { nftOwnerTag, ownerHashOf } from "../cni/attachment.js";
import type { AttachmentRecords } from "./records.js";
import {
  isElementNotFound,
  isNotFound,
  NftError,
  type Element,
  type Interface,
  type Transaction,
} from "../nftables/index.js";
import type { TableState } from "../nftables/dump.js";

/** The whole table of a flat layout in one nft run, or undefined when it does not exist. */
export async function listTableIfExists(
  nft: Interface,
  opts: { text?: boolean } = {},
): Promise<TableState | undefined> {
  try {
    return await nft.listTable(opts);
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

/** The set that says which owner each element belongs to. */
export const OWNERS_SET = "owners";

/** Declares the owners set (15 hex characters per part: ifname keys hold 16 bytes with the NUL). */
export function declareOwners(tx: Transaction): void {
  tx.add({
    kind: "set",
    name: OWNERS_SET,
    type: "ifname . ifname",
    comment: "owner tag . element tag, one per element (comment: owner)",
  });
}

/** Canonical text of an element key, for comparing what we want with what nft lists. */
export function keyText(e: Element): string {
  // nft lists strings without their quotes and host prefixes without their length.
  return `${e.set ?? e.map}|${e.key.map((k) => k.replace(/^"(.*)"$/, "$1").replace(/\/(32|128)$/, "")).join(" . ")}`;
}

export function valueText(e: Element): string {
  return (e.value ?? []).join(" . ");
}

/** The element without value and comment: what a delete names. */
export function keyOnly(e: Element): Element {
  // nft lists string keys unquoted; an owner tag can start with a digit, so it needs its quotes.
  const key = e.set === OWNERS_SET ? e.key.map((k) => (k.startsWith('"') ? k : `"${k}"`)) : e.key;
  return { kind: "element", ...(e.map !== undefined ? { map: e.map } : { set: e.set! }), key };
}

/** The keys of `earlier` and `now` (without values), each once: what a record of several ADDs names. */
export function mergedKeys(earlier: readonly Element[], now: readonly Element[]): Element[] {
  const keys = new Map<string, Element>();
  for (const e of [...earlier, ...now.map(keyOnly)]) keys.set(keyText(e), e);
  return [...keys.values()];
}

/** The `owners` element that says `e` belongs to the owner whose hash is `owner`. */
export function ownerElement(e: Element, owner: string, comment?: string): Element {
  return {
    kind: "element",
    set: OWNERS_SET,
    key: [nftOwnerTag(owner), nftOwnerTag(keyText(e))],
    ...(comment !== undefined ? { comment } : {}),
  };
}

/** The owner element of an element listed from the kernel (its comment names the owner). */
export function ownerElementOf(e: Element): Element | undefined {
  return e.comment === undefined ? undefined : ownerElement(e, ownerHashOf(e.comment), e.comment);
}

/**
 * Deletes a listed element and its owner element (when it has one). `owners`: whether the owners
 * set exists or this transaction declares it (a table of a layout before owner elements lacks it,
 * and nft fails a destroy in a set that is not there).
 */
export function disown(tx: Transaction, old: Element, owners = true): void {
  tx.delete(keyOnly(old));
  const o = owners ? ownerElementOf(old) : undefined;
  if (o) tx.destroy(keyOnly(o));
}

/**
 * Writes `e` (with its owner element) over what the listing `have` holds at its key: nothing when
 * it is there already, the old owner's element and twin deleted when it is someone else's.
 */
export function takeOver(
  tx: Transaction,
  have: ReadonlyMap<string, Element>,
  e: Element,
  owner: string,
  comment: string,
): void {
  const old = have.get(keyText(e));
  tx.add(ownerElement(e, owner, comment));
  if (old && old.comment === comment && valueText(old) === valueText(e)) return;
  if (old) disown(tx, old);
  tx.add(e);
}

/**
 * Writes `e` with its owner element in an ADD, without reading. A key no earlier ADD of the owner
 * recorded is `create`d: nft fails (EEXIST) when it exists, another attachment's or an ADD's whose
 * record is lost, and the ADD takes it over after a listing. A key the owner's record names (a
 * repeated ADD, which runtimes make) is asserted instead: its owner element is deleted and added
 * again, which fails (ENOENT) unless it is still there (another attachment took the key over, or
 * the earlier ADD never reached nft), and the element is `add`ed, which changes nothing when it
 * holds this value, puts it back when a flushed map lost it, and fails (EEXIST) when it holds
 * another. Either failure sends the ADD to its slow path, as a key that exists did before; a
 * repeat that finds its own keys commits at once, whatever the number of containers.
 */
export function writeOwned(
  tx: Transaction,
  e: Element,
  owner: string,
  recorded: ReadonlySet<string>,
  verb: "create" | "add" = "create",
): void {
  if (!recorded.has(keyText(e))) {
    tx[verb](e);
    tx.add(ownerElement(e, owner, e.comment));
    return;
  }
  tx.delete(ownerElement(e, owner));
  tx.add(ownerElement(e, owner, e.comment));
  tx.add(e);
}

/** The keys (as keyText) of a record's `elements` that `want` writes again: what an ADD asserts. */
export function recordedKeys(elements: readonly Element[], want: readonly Element[]): Set<string> {
  const wanted = new Set(want.map(keyText));
  return new Set(elements.map(keyText).filter((k) => wanted.has(k)));
}

/** Deletes a chain whether or not it exists (nft refuses to delete a chain that has rules). */
export function dropChain(tx: Transaction, name: string): void {
  tx.add({ kind: "chain", name });
  tx.flush({ kind: "chain", name });
  tx.delete({ kind: "chain", name });
}

/**
 * Deletes the owner's `keys` without reading: each element with its owner element, and the
 * owner's own `chains`, in one transaction. nft names the operation that failed: a missing owner
 * element means the key is not (or no longer) the owner's, so it is skipped; a missing element
 * whose owner element may still be there (a flushed set or map keeps the `owners` set) leaves
 * its owner element to delete; the rest is retried. Returns the owner's keys (deleted, or found
 * gone with their owner elements deleted), or undefined when the table is not in this layout
 * (the element's map or the owners set missing, not an element: the caller decides). The caller
 * holds the layout's lock (a take-over reads, then writes).
 */
export async function deleteOwned(
  nft: Interface,
  owner: string,
  keys: readonly Element[],
  chains: readonly string[] = [],
): Promise<Element[] | undefined> {
  // The element first: in a table of a previous layout its map is missing (not an element).
  let left = keys.map((key) => ({ key, ops: [keyOnly(key), ownerElement(key, owner)] }));
  for (;;) {
    const ops = left.flatMap((k) => k.ops);
    const tx = nft.newTransaction();
    for (const op of ops) tx.delete(op);
    for (const ch of chains) dropChain(tx, ch);
    try {
      if (ops.length || chains.length) await nft.run(tx);
      return left.map((k) => k.key);
    } catch (e) {
      if (!isElementNotFound(e) || e.operationIndex >= ops.length) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
      const failed = ops[e.operationIndex]!;
      left = left.flatMap((k) => {
        if (!k.ops.includes(failed)) return [k];
        // Its owner element missing: not the owner's. Its element missing: the owner element only.
        return failed === k.ops.at(-1) ? [] : [{ key: k.key, ops: k.ops.slice(1) }];
      });
    }
  }
}

/**
 * Of the shared objects (subnet chains) `names`, those `owner` stops using and no other owner is
 * noted to use: the only ones a DEL tries to drop. Asking the kernel for the others would be a
 * batch that fails (EBUSY), and a failed batch costs the kernel's abort, an RCU grace period
 * (~10 ms here, against ~0.2 ms for one that commits). The notes are hints like records: a
 * missing one only makes the kernel decide, as before.
 */
export function released(records: AttachmentRecords, owner: string, names: readonly string[]): string[] {
  return [...new Set(names)].filter((n) => records.release(n, owner));
}

/**
 * Deletes the subnets' base chains and counters (each pair named alike) that no element names
 * any more: nft refuses to delete a counter an element of an object map names (EBUSY), and the
 * transaction is atomic, so a subnet another container still uses is left whole. Chains or
 * counters already gone are fine.
 */
export async function dropUnusedSubnets(
  nft: Interface,
  names: readonly string[],
  drop: (tx: Transaction, name: string) => void = dropSubnetChain,
): Promise<void> {
  let left = [...new Set(names)];
  while (left.length > 0) {
    const tx = nft.newTransaction();
    // The first operation of each name's part, to tell which one nft refused.
    const starts = left.map((name) => {
      const at = tx.size;
      drop(tx, name);
      return at;
    });
    try {
      await nft.run(tx);
      return;
    } catch (e) {
      if (!(e instanceof NftError) || e.code !== "EBUSY" || e.operationIndex === undefined) throw e;
      const i = e.operationIndex;
      const at = starts.findLastIndex((start) => start <= i);
      left = left.filter((_, j) => j !== at);
    }
  }
}

/** A subnet's counter and base chain (named alike); the counter fails with EBUSY while named. */
export function dropSubnetChain(tx: Transaction, name: string): void {
  tx.destroy({ kind: "counter", name });
  dropChain(tx, name);
}
