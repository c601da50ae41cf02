/**
 * Reading the owner's nft table once: chains with each rule's marker key and handle, sets with
 * their elements, through the Interface's listTable: on the kernel one `nft --json list table`
 * (listing chain by chain would make nft load every set's elements once per chain: minutes with
 * a 100,000-member set), on the fake the same view.
 */
import { isNotFound, type Interface } from "../nftables/index.js";
import { keyFromComment } from "./naming.js";
import type { KernelRule } from "./rule-diff.js";

export interface KernelTableView {
  exists: boolean;
  /** Rules by chain name, in order. */
  chains: Map<string, KernelRule[]>;
  /** Element keys by set name. */
  sets: Map<string, string[][]>;
}

const empty = (): KernelTableView => ({ exists: false, chains: new Map(), sets: new Map() });

/** The whole table in one read (one nft run on the kernel); a missing table is an empty view. */
export async function readTable(nft: Interface): Promise<KernelTableView> {
  let state;
  try {
    state = await nft.listTable();
  } catch (e) {
    if (isNotFound(e)) return empty();
    throw e;
  }
  const view: KernelTableView = { exists: true, chains: new Map(), sets: new Map() };
  for (const c of state.chains)
    view.chains.set(
      c.name,
      (state.rules.get(c.name) ?? []).map((r) => ({ key: keyFromComment(r.comment), handle: r.handle })),
    );
  for (const s of state.sets)
    if (s.kind === "set")
      view.sets.set(
        s.name,
        (state.elements.get(s.name) ?? []).map((e) => e.key),
      );
  return view;
}

export async function readChain(nft: Interface, chain: string): Promise<KernelRule[]> {
  const rules = await nft.listRules(chain);
  return rules.map((r) => ({ key: keyFromComment(r.comment), handle: r.handle }));
}
