/**
 * The previous layout of `inet cni_nft_portmap` (cni-nft before the flat layout): masquerade
 * entries in the interval sets `masq4`/`masq6` keyed `source . container . proto . port`, and no
 * `owners` set. Hosts upgraded while containers run still have it. Its containers stay valid:
 * CHECK accepts them, DEL removes them (reading, as that layout needs), and the first ADD of the
 * new code upgrades the table in one transaction, converting every old element.
 */
import { nftOwnerComment } from "../../../src/cni/attachment.js";
import type { Element, Transaction } from "../../../src/nftables/index.js";
import { mappingsFor, type PortMapConf } from "./config.js";
import {
  desired,
  keyText,
  names,
  ownerElementOf,
  snatChain,
  snatChainTransaction,
  type SnatChain,
} from "./portmap_nftables_layout.js";

export const LEGACY_MASQ_SETS = ["masq4", "masq6"] as const;

/** The masquerade elements the previous layout gave this instance. */
export function legacyMasqElements(c: PortMapConf): Element[] {
  if (!c.snat) return [];
  const comment = nftOwnerComment(c);
  const out = new Map<string, Element>();
  for (const ct of c.containers) {
    const set = `masq${ct.family}`;
    for (const m of mappingsFor(c, ct.family)) {
      const tail = [ct.address, m.protocol, String(m.containerPort)];
      const sources = c.masqAll
        ? [ct.family === 4 ? "0.0.0.0/0" : "::/0"]
        : [ct.subnet, ...(ct.family === 4 ? ["127.0.0.1"] : [])];
      for (const src of sources) {
        const e: Element = { kind: "element", set, key: [src, ...tail], comment };
        out.set(keyText(e), e);
      }
    }
  }
  return [...out.values()];
}

/** Every element the previous layout gave this instance (dnat and guard ones are unchanged). */
export function legacyDesired(c: PortMapConf): Element[] {
  return [
    ...desired(c).elements.filter((e) => !(e.map ?? e.set ?? "").startsWith("snat")),
    ...legacyMasqElements(c),
  ];
}

/** Whether a listed table is in the previous layout. */
export function isLegacy(sets: readonly string[]): boolean {
  return LEGACY_MASQ_SETS.some((s) => sets.includes(s));
}

/**
 * Adds to `tx` (which already declares the new skeleton and has flushed postrouting, the only
 * user of the old sets) what turns the listed old elements into the new layout: each masquerade
 * entry becomes its snat element (of the current layout), every element gets its owner element,
 * and the old sets go.
 */
export function upgradeTransaction(
  tx: Transaction,
  elements: readonly Element[],
  sets: readonly string[],
): void {
  const added = new Set<string>();
  const chains = new Map<string, SnatChain>();
  const snats: Element[] = [];
  const own = (e: Element): void => {
    const o = ownerElementOf(e);
    if (o && !added.has(keyText(o))) {
      added.add(keyText(o));
      tx.add(o);
    }
  };
  for (const e of elements) {
    if (e.set === undefined || !(LEGACY_MASQ_SETS as readonly string[]).includes(e.set)) {
      if (e.set !== "owners") own(e);
      continue;
    }
    const [src, addr, proto, port] = e.key;
    if (src === undefined || addr === undefined || proto === undefined || port === undefined) continue;
    const f = e.set === "masq4" ? 4 : 6;
    const all = src === "0.0.0.0/0" || src === "::/0";
    // The localhost entry rides on the subnet one (the subnet's chain masquerades 127.0.0.1 too).
    if (src === "127.0.0.1") continue;
    const subnet = src.includes("/") ? src : `${src}/${f === 4 ? 32 : 128}`;
    const chain = snatChain(f, subnet);
    if (!all && !chains.has(chain)) chains.set(chain, { family: f, chain, subnet });
    const key = [addr, proto, port];
    const comment = e.comment !== undefined ? { comment: e.comment } : {};
    const snat: Element = all
      ? { kind: "element", set: names(f).snatAll, key, ...comment }
      : { kind: "element", map: names(f).snat, key, value: [chain], ...comment };
    if (added.has(keyText(snat))) continue;
    added.add(keyText(snat));
    snats.push(snat);
  }
  // An element of the snat map needs the counter it names.
  for (const s of chains.values()) snatChainTransaction(tx, s);
  for (const e of snats) {
    tx.add(e);
    own(e);
  }
  for (const s of LEGACY_MASQ_SETS) if (sets.includes(s)) tx.delete({ kind: "set", name: s });
}
