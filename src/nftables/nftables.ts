/**
 * The real implementation: a table on the kernel, changed through `nft -f -` and read through
 * `nft --json`.
 */
import { NftError, codeFromMessage } from "./errors.js";
import { execNft, type ExecOptions, type ExecResult } from "./exec.js";
import { probeFeatures } from "./features.js";
import {
  chainFromJson,
  counterFromJson,
  elementsFromJson,
  flowtableFromJson,
  inTable,
  parseListing,
  ruleFromJson,
  setFromJson,
} from "./json.js";
import { renderDump, type TableState } from "./dump.js";
import { Transaction } from "./transaction.js";
import { applyTransactions } from "./batch.js";
import type { Counter, Element, Family, Features, Interface, ListKind, NMap, NSet, Rule } from "./types.js";
import { validateName, validateScope } from "./validate.js";

export interface NFTablesOptions extends ExecOptions {
  family: Family;
  table: string;
}

export class NFTables implements Interface {
  readonly family: Family;
  readonly table: string;
  private readonly exec: ExecOptions;

  constructor(opts: NFTablesOptions) {
    ({ family: this.family, table: this.table } = validateScope(opts.family, opts.table));
    this.exec = { nftPath: opts.nftPath, netns: opts.netns, runner: opts.runner };
  }

  newTransaction(): Transaction {
    return new Transaction({ family: this.family, table: this.table });
  }

  /** nft version and capabilities (probed once per process). */
  features(): Promise<Features> {
    return probeFeatures(this.exec);
  }

  run(tx: Transaction): Promise<void> {
    return this.apply(tx, []);
  }

  check(tx: Transaction): Promise<void> {
    return this.apply(tx, ["--check"]);
  }

  private apply(tx: Transaction, extra: string[]): Promise<void> {
    return applyTransactions([tx], this.exec, extra.includes("--check"));
  }

  private async listJson(args: string[]): Promise<ReturnType<typeof parseListing>> {
    const res = await execNft(["--json", ...args], this.exec);
    failOnError(res, args);
    return parseListing(res.stdout);
  }

  async list(kind: ListKind): Promise<string[]> {
    const where = `${this.family} ${this.table}`.split(" ");
    const args: Record<ListKind, string[]> = {
      chains: ["--terse", "list", "chains", this.family],
      sets: ["--terse", "list", "sets", "table", ...where],
      maps: ["--terse", "list", "maps", this.family],
      counters: ["list", "counters", "table", ...where],
      flowtables: ["list", "flowtables", this.family],
    };
    const objKind = kind.slice(0, -1);
    const entries = await this.listJson(args[kind]);
    if (kind === "chains" || kind === "maps" || kind === "flowtables") await this.ensureTable(entries);
    return entries
      .filter(([k, b]) => k === objKind && inTable(b, this.family, this.table))
      .map(([, b]) => (typeof b["name"] === "string" ? b["name"] : ""))
      .sort();
  }

  /** Family-wide listings do not fail for a missing table; make them, as the others do. */
  private async ensureTable(entries: ReturnType<typeof parseListing>): Promise<void> {
    if (entries.some(([, b]) => inTable(b, this.family, this.table))) return;
    await this.listJson(["--terse", "list", "table", this.family, this.table]);
  }

  /**
   * Rules of a chain with handle and comment. With `text`, one more nft run adds each rule's
   * text as nft prints it (nft's JSON has only the expression tree).
   */
  async listRules(chain: string, opts: { text?: boolean } = {}): Promise<Rule[]> {
    validateName("chain", chain);
    // Both listings at once: nft's text listing of a long chain takes as long as its JSON.
    const [entries, res] = await Promise.all([
      this.listJson(["list", "chain", this.family, this.table, chain]),
      opts.text ? execNft(["-a", "list", "chain", this.family, this.table, chain], this.exec) : undefined,
    ]);
    const rules = entries.filter(([k]) => k === "rule").map(([, b]) => ruleFromJson(b));
    if (res) {
      failOnError(res, ["list", "chain", chain]);
      const texts = parseRuleTexts(res.stdout);
      for (const r of rules) r.rule = texts.get(r.handle ?? -1) ?? "";
    }
    return rules;
  }

  async listElements(kind: "set" | "map", name: string): Promise<Element[]> {
    validateName(kind, name);
    const entries = await this.listJson(["list", kind, this.family, this.table, name]);
    const body = entries.find(([k]) => k === kind)?.[1];
    return body ? elementsFromJson(kind, name, body) : [];
  }

  async listCounters(): Promise<Counter[]> {
    const entries = await this.listJson(["list", "counters", "table", this.family, this.table]);
    return entries
      .filter(([k, b]) => k === "counter" && inTable(b, this.family, this.table))
      .map(([, b]) => counterFromJson(b))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async dump(): Promise<string> {
    const [entries, text] = await Promise.all([
      this.listJson(["list", "table", this.family, this.table]),
      execNft(["-a", "list", "table", this.family, this.table], this.exec),
    ]);
    failOnError(text, ["list", "table"]);
    const texts = parseRuleTexts(text.stdout);
    // nft 1.0.6 leaves table and chain comments out of its JSON; its text listing has them.
    const comments = parseObjectComments(text.stdout);
    // It also leaves out a chain's device, the dynamic flag and auto-merge of sets.
    const extras = parseListingExtras(text.stdout);
    const state: TableState = {
      chains: [],
      rules: new Map(),
      sets: [],
      elements: new Map(),
      counters: [],
      flowtables: [],
    };
    if (comments.table !== undefined) state.comment = comments.table;
    for (const [kind, b] of entries) {
      if (kind === "table" && b["name"] === this.table && b["family"] === this.family) {
        if (typeof b["comment"] === "string") state.comment = b["comment"];
        continue;
      }
      if (!inTable(b, this.family, this.table)) continue;
      if (kind === "chain") {
        const c = chainFromJson(b);
        c.comment ??= comments.chains.get(c.name);
        if (c.comment === undefined) delete c.comment;
        const device = extras.devices.get(c.name);
        if (c.type && c.device === undefined && device !== undefined) c.device = device;
        state.chains.push(c);
      } else if (kind === "rule") {
        const r = ruleFromJson(b);
        r.rule = texts.get(r.handle ?? -1) ?? "";
        const list = state.rules.get(r.chain) ?? [];
        list.push(r);
        state.rules.set(r.chain, list);
      } else if (kind === "set" || kind === "map") {
        const s: NSet | NMap = setFromJson(kind, b);
        if (extras.dynamic.has(s.name) && !s.flags?.includes("dynamic"))
          s.flags = [...(s.flags ?? []), "dynamic"];
        if (extras.autoMerge.has(s.name)) s.autoMerge = true;
        state.sets.push(s);
        state.elements.set(s.name, elementsFromJson(kind, s.name, b));
      } else if (kind === "counter") state.counters.push(counterFromJson(b));
      else if (kind === "flowtable") state.flowtables.push(flowtableFromJson(b));
    }
    return renderDump({ family: this.family, table: this.table }, state);
  }
}

function failOnError(res: ExecResult, args: string[]): void {
  if (res.code === 0) return;
  const msg = res.stderr.match(/Error: (.*)/)?.[1] ?? res.stderr.trim();
  if (/JSON support not compiled|unrecognized option.*json/i.test(res.stderr))
    throw new NftError(
      "ENOTSUP",
      "this nft was built without JSON support, which listing needs (install a distribution nft)",
    );
  throw new NftError(codeFromMessage(msg), `nft ${args.join(" ")}: ${msg}`, undefined, undefined, res.stderr);
}

/** Rule text by handle from `nft -a list ...` output. */
export function parseRuleTexts(listing: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of listing.split("\n")) {
    const m = /^\t\t(.*?)(?: comment "[^"]*")? # handle (\d+)$/.exec(line);
    if (m && !line.includes("{ # handle")) out.set(Number(m[2]), m[1]!);
  }
  return out;
}

/**
 * What nft 1.0.6 prints in its text listing of a table but not in its JSON: the device of a base
 * chain on one device, and which sets are dynamic or auto-merge.
 */
export function parseListingExtras(listing: string): {
  devices: Map<string, string>;
  dynamic: Set<string>;
  autoMerge: Set<string>;
} {
  const out = {
    devices: new Map<string, string>(),
    dynamic: new Set<string>(),
    autoMerge: new Set<string>(),
  };
  let chain: string | undefined;
  let set: string | undefined;
  for (const line of listing.split("\n")) {
    const head = /^\t(chain|set|map) (\S+) \{/.exec(line);
    if (head) {
      chain = head[1] === "chain" ? head[2] : undefined;
      set = head[1] === "chain" ? undefined : head[2];
      continue;
    }
    if (line === "\t}") chain = set = undefined;
    else if (chain !== undefined) {
      const dev = /^\t\ttype \w+ hook \w+ device "([^"]+)" /.exec(line);
      if (dev) out.devices.set(chain, dev[1]!);
    } else if (set !== undefined) {
      if (/^\t\tflags (\S+,)?dynamic(,\S+)?$/.test(line)) out.dynamic.add(set);
      else if (line === "\t\tauto-merge") out.autoMerge.add(set);
    }
  }
  return out;
}

/** Table and chain comments from `nft list table` text output. */
export function parseObjectComments(listing: string): { table?: string; chains: Map<string, string> } {
  const out: { table?: string; chains: Map<string, string> } = { chains: new Map() };
  let owner: { kind: "table" } | { kind: "chain"; name: string } | undefined;
  for (const line of listing.split("\n")) {
    const chain = /^\tchain (\S+) \{/.exec(line);
    if (/^table /.test(line)) owner = { kind: "table" };
    else if (chain) owner = { kind: "chain", name: chain[1]! };
    else {
      const m = /^\t{1,2}comment "([^"]*)"$/.exec(line);
      if (m && owner?.kind === "table" && line.startsWith("\tcomment")) out.table = m[1]!;
      else if (m && owner?.kind === "chain" && line.startsWith("\t\tcomment"))
        out.chains.set(owner.name, m[1]!);
      owner = undefined;
    }
  }
  return out;
}
