/**
 * Reading the owner's nft table once: chains with each rule's marker key and handle, sets with
 * their elements. On the kernel this is one `nft --json list table` (the library's listTable;
 * listing chain by chain would make nft load every set's elements once per chain: minutes with a
 * 100,000-member set); through a library Interface (the fake) it lists chain by chain.
 */
import { isNotFound, NFTables, type ExecOptions, type Interface } from "../nftables/index.js";
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

/** One listing of the whole table on the kernel (one nft run). */
export async function readTableJson(
  family: "ip" | "ip6",
  table: string,
  exec: ExecOptions,
): Promise<KernelTableView> {
  let state;
  try {
    state = await new NFTables({ family, table, ...exec }).listTable();
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

/** Chain by chain through the library's Interface (the fake in tests). */
export async function readTableListing(nft: Interface): Promise<KernelTableView> {
  let chains: string[];
  let sets: string[];
  try {
    [chains, sets] = await Promise.all([nft.list("chains"), nft.list("sets")]);
  } catch (e) {
    if (isNotFound(e)) return empty();
    throw e;
  }
  const view: KernelTableView = { exists: true, chains: new Map(), sets: new Map() };
  await Promise.all([
    ...chains.map(async (c) => view.chains.set(c, await readChain(nft, c))),
    ...sets.map(async (s) =>
      view.sets.set(
        s,
        (await nft.listElements("set", s)).map((e) => e.key),
      ),
    ),
  ]);
  return view;
}

export async function readChain(nft: Interface, chain: string): Promise<KernelRule[]> {
  const rules = await nft.listRules(chain);
  return rules.map((r) => ({ key: keyFromComment(r.comment), handle: r.handle }));
}
