/**
 * The layout before the current one (issue 14's first flat layout): masquerade as the verdict
 * maps `snat4`/`snat6` (`container . proto . port : jump snat4-<subnet>` or `jump snat_all`),
 * regular chains `snat4-<sha(subnet)>` (`ip saddr <subnet> masquerade; ip saddr 127.0.0.1
 * masquerade`) and `snat_all` (`masquerade`). A jump per container made every commit that adds a
 * rule or a jump validate every container's jump in the kernel: ADD grew with the number of
 * containers. Hosts upgraded while containers run still have it: CHECK compares with it while the
 * table is in it, DEL finds its containers by listing, and the first ADD of the new code converts
 * every element in one transaction.
 */
import type { Element, Rule, Transaction } from "../../../src/nftables/index.js";
import type { ListedLayout } from "./portmap_nftables_state.js";
import type { Family, PortMapConf } from "./config.js";
import {
  desired,
  keyOnly,
  names,
  ownerElementOf,
  snatChain,
  snatChainTransaction,
  type SnatChain,
} from "./portmap_nftables_layout.js";

export const V2_SNAT_MAPS = ["snat4", "snat6"] as const;
const V2_SNAT_ALL = "snat_all";
const V2_SUBNET_CHAIN = /^snat([46])-([0-9a-f]{12})$/;

/** Whether a listed table is in this layout. */
export function isV2(sets: readonly string[]): boolean {
  return V2_SNAT_MAPS.some((m) => sets.includes(m));
}

/** The elements this layout gave an instance (for CHECK while the table is in it). */
export function v2Desired(c: PortMapConf): Element[] {
  return desired(c).elements.map((e) => {
    const f = e.map === names(4).snat || e.set === names(4).snatAll ? 4 : 6;
    if (e.map === names(f).snat) return { ...e, map: `snat${f}`, value: [`jump ${v2Chain(e.value![0]!)}`] };
    if (e.set === names(f).snatAll) {
      const { set: _set, ...rest } = e;
      return { ...rest, map: `snat${f}`, value: [`jump ${V2_SNAT_ALL}`] };
    }
    return e;
  });
}

/** The name this layout gave a subnet's chain (same hash, another prefix). */
function v2Chain(current: string): string {
  return current.replace(/^snat_sub([46])-/, "snat$1-");
}

/** The subnet a chain of this layout masquerades, from its rule texts. */
function subnetOf(f: Family, rules: readonly Rule[]): string | undefined {
  for (const r of rules) {
    const s = /^ip6? saddr (\S+) masquerade$/.exec(r.rule)?.[1];
    if (s && s !== "127.0.0.1") return s.includes("/") ? s : `${s}/${f === 4 ? 32 : 128}`;
  }
  return undefined;
}

/**
 * Adds to `tx` (which already declares the current skeleton and has rewritten postrouting, the
 * only rule user of the old maps) what turns a listed table of this layout into the current one:
 * each subnet chain becomes the subnet's base chain and counter, each snat element its element
 * in the snat map or the masqAll set with its owner element, and the old maps and chains go.
 * `rules`: the old chains' rule texts. An element whose chain lost its rules (a flushed table:
 * its subnet is unknown) is dropped; the container's repeated ADD writes it again.
 */
export function upgradeV2Transaction(tx: Transaction, state: ListedLayout): void {
  const subnets = new Map<string, SnatChain>();
  for (const ch of state.chains) {
    const m = V2_SUBNET_CHAIN.exec(ch);
    if (!m) continue;
    const f = Number(m[1]) as Family;
    const subnet = subnetOf(f, state.rules.get(ch) ?? []);
    if (subnet) subnets.set(ch, { family: f, chain: snatChain(f, subnet), subnet });
  }
  const written = new Set<string>();
  for (const s of subnets.values())
    if (!written.has(s.chain)) {
      written.add(s.chain);
      snatChainTransaction(tx, s);
    }
  for (const e of state.elements) {
    if (!e.map || !(V2_SNAT_MAPS as readonly string[]).includes(e.map)) continue;
    const f: Family = e.map === "snat4" ? 4 : 6;
    const target = /^jump (\S+)$/.exec(e.value?.[0] ?? "")?.[1];
    const comment = e.comment !== undefined ? { comment: e.comment } : {};
    const sub = target === undefined ? undefined : subnets.get(target);
    const next: Element | undefined =
      target === V2_SNAT_ALL
        ? { kind: "element", set: names(f).snatAll, key: e.key, ...comment }
        : sub && { kind: "element", map: names(f).snat, key: e.key, value: [sub.chain], ...comment };
    const old = ownerElementOf(e);
    if (old) tx.destroy(keyOnly(old));
    if (!next) continue;
    tx.add(next);
    const owner = ownerElementOf(next);
    if (owner) tx.add(owner);
  }
  for (const m of V2_SNAT_MAPS) if (state.sets.includes(m)) tx.delete({ kind: "map", name: m });
  for (const ch of state.chains)
    if (V2_SUBNET_CHAIN.test(ch) || ch === V2_SNAT_ALL) {
      tx.flush({ kind: "chain", name: ch });
      tx.delete({ kind: "chain", name: ch });
    }
}

/**
 * A record written by this layout names snat elements of map `snat4`/`snat6` and subnet chains
 * `snat4-<hash>`: their current names (a masquerade key may be in either of the two, so both are
 * tried; the one that is not the attachment's is skipped by the owner check).
 */
export function currentRecordNames(
  elements: readonly Element[],
  shared: readonly string[],
): { elements: Element[]; shared: string[] } {
  return {
    elements: elements.flatMap((e): Element[] => {
      if (e.map !== "snat4" && e.map !== "snat6") return [e];
      const n = names(e.map === "snat4" ? 4 : 6);
      return [
        { kind: "element", map: n.snat, key: e.key },
        { kind: "element", set: n.snatAll, key: e.key },
      ];
    }),
    shared: shared.map((ch) => ch.replace(/^snat([46])-(?=[0-9a-f]{12}$)/, "snat_sub$1-")),
  };
}
