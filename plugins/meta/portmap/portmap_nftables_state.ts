/**
 * Table `inet cni_nft_portmap` as one listing gives it, and what its elements tell: the UDP ports
 * to flush conntrack for, and which guarded and class elements belong to which dnat key. Shared by
 * ADD's slow path, CHECK and the DELs that list (portmap_nftables.ts, portmap_nftables_remove.ts).
 */
import { isNotFound, type Element, type Interface, type Rule } from "../../../src/nftables/index.js";
import { keyText } from "./portmap_nftables_layout.js";

export interface TableState {
  elements: Element[];
  chains: string[];
  sets: string[];
  rules: Map<string, Rule[]>;
}

/**
 * A listed table as the upgrades from the layouts before read it (portmap_nftables_v2.ts,
 * portmap_nftables_guards.ts): its elements, set and map names, chains and their rules (with
 * texts).
 */
export interface ListedLayout {
  readonly elements: readonly Element[];
  readonly sets: readonly string[];
  readonly chains: readonly string[];
  readonly rules: ReadonlyMap<string, Rule[]>;
}

/**
 * Everything in the table in one nft run (rule texts in a second, with `text`), or undefined
 * when the table does not exist.
 */
export async function listState(
  nft: Interface,
  opts: { text?: boolean } = {},
): Promise<TableState | undefined> {
  try {
    const t = await nft.listTable(opts);
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

/** UDP host ports of dnat elements (for the conntrack flush). */
export function udpPorts(elements: readonly Element[]): number[] {
  const ports = elements
    .filter((e) => e.map?.startsWith("dnat_") && e.key.at(-2) === "udp")
    .map((e) => Number(e.key.at(-1)));
  return [...new Set(ports)];
}

/** A dnat, guarded or class element's kind, family and key: alike for the three of one mapping. */
export function guardKind(x: Element): string {
  const kind =
    /^(?:dnat_|guarded_)(ip|any)([46])$/.exec(x.map ?? x.set ?? "") ??
    /^cond_(ip|any)([46])-/.exec(x.map ?? "");
  return `${kind?.[1]}${kind?.[2]} ${keyText({ ...x, map: "", set: "" })}`;
}

/** Listed guarded and class elements of the dnat keys among `elements`. */
export function guardsOf(listed: readonly Element[], elements: readonly Element[]): Element[] {
  const keys = new Set(elements.filter((e) => e.map?.startsWith("dnat_")).map(guardKind));
  return listed.filter(
    (x) => (x.set?.startsWith("guarded_") || x.map?.startsWith("cond_")) && keys.has(guardKind(x)),
  );
}

/** The class (its counter and prerouting chain) whose map `map` is: cond_ip4-<h>, cond_any4-<h>: cond4-<h>. */
export function classOfMap(map: string): string {
  return map.replace(/^cond_(?:ip|any)([46])-/, "cond$1-");
}

/**
 * The listed class element of the mapping of class element `e` (same kind, family, key and
 * owner), in whichever class holds it. A class that the upgrade from guard chains made is named
 * after nft's text of the conditions (portmap_nftables_guards.ts), which may not be the config's
 * (nft prints `ip saddr 10.0.0.1/32` as `ip saddr 10.0.0.1`, sorts sets, folds spaces), so the
 * class desired() names from the config can differ from the one that holds the element: CHECK
 * looks it up here, and DEL finds it the same way, by listing, when its class element was not
 * among its keys.
 */
export function listedClassElement(listed: readonly Element[], e: Element): Element | undefined {
  const kind = guardKind(e);
  return listed.find((x) => x.map?.startsWith("cond_") && x.comment === e.comment && guardKind(x) === kind);
}
