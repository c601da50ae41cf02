/**
 * The layout before classes of conditions: a container with `conditionsV4/V6` had, per mapping,
 * a verdict element in `guard_ip4`/`guard_any4` (`key : jump guard4-<owner>`) and a chain of its
 * own, `guard4-<owner>` (`<conditions> return; accept`). A jump per container made every commit
 * that adds a rule or a jump validate all of them in the kernel (an ADD grew with the number of
 * such containers, as the masquerade jumps did before: see portmap_nftables_v2.ts). Every table
 * of the layouts before has the four maps (declared whether or not any container had
 * conditions): CHECK compares with them while the table has them, and the first ADD of the new
 * code turns every guard into its class's elements in one transaction.
 */
import { ownerHashOf, nftOwnerHash, type Attachment } from "../../../src/cni/attachment.js";
import type { Element, Transaction } from "../../../src/nftables/index.js";
import type { ListedLayout } from "./portmap_nftables_state.js";
import type { Family } from "./config.js";
import {
  condClass,
  condClassTransaction,
  condMaps,
  keyOnly,
  names,
  ownerElementOf,
  type CondClass,
} from "./portmap_nftables_layout.js";

export const OLD_GUARD_MAPS = ["guard_ip4", "guard_any4", "guard_ip6", "guard_any6"] as const;
const OLD_GUARD_CHAIN = /^guard([46])-[0-9a-f]{16}-[0-9a-f]{16}$/;
const GUARDED = /^guarded_(ip|any)([46])$/;

/** Whether a listed table still has the guard maps of the layouts before. */
export function hasOldGuards(sets: readonly string[]): boolean {
  return OLD_GUARD_MAPS.some((m) => sets.includes(m));
}

/**
 * The elements of `current` (desired()'s) as the layouts before had them: each guarded key a
 * verdict element jumping to the owner's chain, no class elements.
 */
export function withOldGuards(a: Attachment, current: readonly Element[]): Element[] {
  return current.flatMap((e): Element[] => {
    if (e.map?.startsWith("cond_")) return [];
    const m = GUARDED.exec(e.set ?? "");
    if (!m) return [e];
    const { set: _set, ...rest } = e;
    return [{ ...rest, map: `guard_${m[1]}${m[2]}`, value: [`jump guard${m[2]}-${nftOwnerHash(a)}`] }];
  });
}

/** The owner's guard chains that verdict elements among `elements` jump to. */
export function oldGuardChains(elements: readonly Element[]): string[] {
  const targets = elements.flatMap((e) =>
    e.map?.startsWith("guard_") ? (/^jump (guard[46]-\S+)$/.exec(e.value?.[0] ?? "")?.[1] ?? []) : [],
  );
  return [...new Set(targets)];
}

/** A record of those layouts names guard elements: their current set (same key). */
export function currentGuardNames(elements: readonly Element[]): Element[] {
  return elements.map((e) => {
    const m = /^guard_(ip|any)([46])$/.exec(e.map ?? "");
    return m ? { kind: "element", set: `guarded_${m[1]}${m[2]}`, key: e.key } : e;
  });
}

/**
 * Adds to `tx` (which already declares the current skeleton and has rewritten `hostports`, the
 * only user of the old maps) what turns the old guards of a listed table (`rules`: with texts)
 * into classes: each guard chain's conditions (nft's text of them) become a class, each guard
 * element its `guarded_*` element and its class's element, each with its owner element, and the
 * old maps and chains go. Returns [class, owner hash] per converted owner, for notes of use, and
 * the elements written.
 */
export function upgradeGuardsTransaction(
  tx: Transaction,
  state: ListedLayout,
): { uses: Array<[string, string]>; written: Element[] } {
  const classOf = new Map<string, CondClass>();
  for (const ch of state.chains) {
    const m = OLD_GUARD_CHAIN.exec(ch);
    const first = state.rules.get(ch)?.[0]?.rule;
    if (m && first?.endsWith(" return"))
      classOf.set(ch, condClass(Number(m[1]) as Family, [first.slice(0, -" return".length)]));
  }
  const classes = new Set<string>();
  for (const k of classOf.values())
    if (!classes.has(k.name)) {
      classes.add(k.name);
      condClassTransaction(tx, k);
    }
  const uses = new Map<string, [string, string]>();
  const written: Element[] = [];
  for (const e of state.elements) {
    const m = /^guard_(ip|any)([46])$/.exec(e.map ?? "");
    if (!m) continue;
    const old = ownerElementOf(e);
    if (old) tx.destroy(keyOnly(old));
    // A guard whose chain lost its rules (a flushed table: its conditions are unknown) is
    // dropped; the container's repeated ADD writes it again.
    const k = classOf.get(/^jump (\S+)$/.exec(e.value?.[0] ?? "")?.[1] ?? "");
    if (!k || e.comment === undefined) continue;
    const comment = { comment: e.comment };
    const kind = m[1] as "ip" | "any";
    const f = Number(m[2]) as Family;
    const guarded = names(f)[kind === "ip" ? "guardedIp" : "guardedAny"];
    for (const next of [
      { kind: "element", set: guarded, key: e.key, ...comment },
      { kind: "element", map: condMaps(k.name)[kind], key: e.key, value: [k.name], ...comment },
    ] satisfies Element[]) {
      tx.add(next);
      written.push(next);
      const owner = ownerElementOf(next);
      if (owner) tx.add(owner);
    }
    const owner = ownerHashOf(e.comment);
    uses.set(`${k.name} ${owner}`, [k.name, owner]);
  }
  for (const m of OLD_GUARD_MAPS) if (state.sets.includes(m)) tx.delete({ kind: "map", name: m });
  for (const ch of state.chains)
    if (OLD_GUARD_CHAIN.test(ch)) {
      tx.flush({ kind: "chain", name: ch });
      tx.delete({ kind: "chain", name: ch });
    }
  return { uses: [...uses.values()], written };
}
