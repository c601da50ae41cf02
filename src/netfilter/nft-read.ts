/**
 * Reading the owner's nft table once: chains with each rule's marker key and handle, sets with
 * their elements. On the kernel this is one `nft --json list table` (listing chain by chain would
 * make nft load every set's elements once per chain: minutes with a 100,000-member set); through
 * a library Interface (the fake) it lists chain by chain.
 */
import { execNft, type ExecOptions } from "../nftables/exec.js";
import { elementsFromJson, inTable, parseListing, ruleFromJson } from "../nftables/json.js";
import { isNotFound, NftError, codeFromMessage, type Interface } from "../nftables/index.js";
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

/** One listing of the whole table on the kernel; returns the processes it ran. */
export async function readTableJson(
  family: "ip" | "ip6",
  table: string,
  exec: ExecOptions,
): Promise<KernelTableView> {
  const res = await execNft(["--json", "list", "table", family, table], exec);
  if (res.code !== 0) {
    const msg = /Error: (.*)/.exec(res.stderr)?.[1] ?? res.stderr.trim();
    if (codeFromMessage(msg) === "ENOENT") return empty();
    throw new NftError(
      codeFromMessage(msg),
      `nft list table ${family} ${table}: ${msg}`,
      undefined,
      undefined,
      res.stderr,
    );
  }
  const view: KernelTableView = { exists: true, chains: new Map(), sets: new Map() };
  for (const [kind, b] of parseListing(res.stdout)) {
    if (!inTable(b, family, table)) continue;
    if (kind === "chain" && typeof b["name"] === "string")
      view.chains.set(b["name"], view.chains.get(b["name"]) ?? []);
    else if (kind === "rule") {
      const r = ruleFromJson(b);
      const list = view.chains.get(r.chain) ?? [];
      list.push({ key: keyFromComment(r.comment), handle: r.handle });
      view.chains.set(r.chain, list);
    } else if (kind === "set" && typeof b["name"] === "string")
      view.sets.set(
        b["name"],
        elementsFromJson("set", b["name"], b).map((e) => e.key),
      );
  }
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
