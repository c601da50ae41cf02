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
import { validateObject } from "./objects.js";
import { parseGetElements, parseListingExtras, parseObjectComments, parseRuleTexts } from "./text.js";
import { fastElements, fastRules } from "./json_fast.js";
import { retryPause } from "./retry.js";
import {
  FAMILIES,
  byFamilyThenName,
  type Counter,
  type Element,
  type Family,
  type Features,
  type Interface,
  type ListKind,
  type NMap,
  type NSet,
  type Rule,
  type TableRef,
} from "./types.js";
import { validateName, validateScope } from "./validate.js";

export { parseListingExtras, parseObjectComments, parseRuleTexts };

/** Reads of a listing's JSON and text that a concurrent rewrite may part (see withRuleTexts). */
const READ_ATTEMPTS = 10;

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
    this.exec = { nftPath: opts.nftPath, netns: opts.netns, runner: opts.runner, exec: opts.exec };
  }

  newTransaction(): Transaction {
    return new Transaction({ family: this.family, table: this.table });
  }

  forTable(family: Family, table: string): NFTables {
    return new NFTables({ family, table, ...this.exec });
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

  runAll(txs: readonly Transaction[]): Promise<void> {
    return applyTransactions([...txs], this.exec);
  }

  private apply(tx: Transaction, extra: string[]): Promise<void> {
    return applyTransactions([tx], this.exec, extra.includes("--check"));
  }

  async listTables(family?: Family): Promise<TableRef[]> {
    const entries = await this.listJson(["list", "tables", ...(family ? [family] : [])]);
    return entries
      .filter(([k]) => k === "table")
      .map(([, b]) => ({
        family: b["family"] as Family,
        name: typeof b["name"] === "string" ? b["name"] : "",
      }))
      .filter((t) => FAMILIES.includes(t.family))
      .sort(byFamilyThenName);
  }

  async getElements(keys: readonly Element[]): Promise<Element[]> {
    if (keys.length === 0) return [];
    const byTarget = new Map<string, Element[]>();
    for (const k of keys) {
      validateObject("delete", {
        kind: "element",
        ...(k.map !== undefined ? { map: k.map } : { set: k.set! }),
        key: k.key,
      });
      const target = k.map ?? k.set!;
      byTarget.set(target, [...(byTarget.get(target) ?? []), k]);
    }
    const text = [...byTarget]
      .map(
        ([name, es]) =>
          `get element ${this.family} ${this.table} ${name} { ${es.map((e) => e.key.join(" . ")).join(", ")} }\n`,
      )
      .join("");
    const res = await execNft(["-f", "-"], this.exec, text);
    failOnError(res, ["get", "element"]);
    return parseGetElements(res.stdout);
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
    const args = ["list", "chain", this.family, this.table, chain];
    const [rules, listing] = await this.withRuleTexts(
      async () => {
        const json = await execNft(["--json", ...args], this.exec);
        failOnError(json, args);
        return rulesOfListing(json.stdout);
      },
      (rules) => rules.map((r) => r.handle),
      opts.text ? args : undefined,
    );
    if (listing === undefined) return rules;
    const texts = parseRuleTexts(listing);
    for (const r of rules) r.rule = texts.get(r.handle ?? -1) ?? "";
    return rules;
  }

  /**
   * `read` (a JSON listing: handles, comments) and, with `textArgs`, nft's text listing of the
   * same object (`-a`: rule texts by handle), in parallel: nft's text listing of a long chain
   * takes as long as its JSON. A concurrent rewrite of a chain between the two reads (flush and
   * add, as every ADD rewrites the shared skeleton chains: new handles) leaves handles of the
   * JSON without text, which a CHECK read as rules missing. Both are read again then, after a
   * random pause (a handle is never reused within a chain), at most READ_ATTEMPTS times.
   */
  private async withRuleTexts<T>(
    read: () => Promise<T>,
    handlesOf: (value: T) => ReadonlyArray<number | undefined>,
    textArgs: string[] | undefined,
  ): Promise<[T, string | undefined]> {
    for (let attempt = 1; ; attempt++) {
      const [value, res] = await Promise.all([
        read(),
        textArgs ? execNft(["-a", ...textArgs], this.exec) : undefined,
      ]);
      if (!res) return [value, undefined];
      failOnError(res, textArgs!);
      const texts = parseRuleTexts(res.stdout);
      if (handlesOf(value).every((h) => texts.has(h ?? -1)) || attempt >= READ_ATTEMPTS)
        return [value, res.stdout];
      await retryPause(attempt);
    }
  }

  async listElements(kind: "set" | "map", name: string): Promise<Element[]> {
    validateName(kind, name);
    const args = ["--json", "list", kind, this.family, this.table, name];
    const res = await execNft(args, this.exec);
    failOnError(res, args.slice(1));
    return elementsOfListing(res.stdout, kind, name);
  }

  async listCounters(): Promise<Counter[]> {
    const entries = await this.listJson(["list", "counters", "table", this.family, this.table]);
    return entries
      .filter(([k, b]) => k === "counter" && inTable(b, this.family, this.table))
      .map(([, b]) => counterFromJson(b))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async dump(): Promise<string> {
    return renderDump({ family: this.family, table: this.table }, await this.listTable({ text: true }));
  }

  async listTable(opts: { text?: boolean } = {}): Promise<TableState> {
    const args = ["list", "table", this.family, this.table];
    const [entries, text] = await this.withRuleTexts(
      () => this.listJson(args),
      (entries) => entries.flatMap(([kind, b]) => (kind === "rule" ? [b["handle"] as number] : [])),
      opts.text ? args : undefined,
    );
    const listing = text ?? "";
    const texts = parseRuleTexts(listing);
    // nft 1.0.6 leaves table and chain comments out of its JSON; its text listing has them.
    const comments = parseObjectComments(listing);
    // It also leaves out a chain's device, the dynamic flag and auto-merge of sets.
    const extras = parseListingExtras(listing);
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
    return state;
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

/** The rules of a `nft --json list chain` (handle, comment; no text): the fast reader, else JSON. */
export function rulesOfListing(stdout: string): Rule[] {
  return (
    fastRules(stdout) ??
    parseListing(stdout)
      .filter(([k]) => k === "rule")
      .map(([, b]) => ruleFromJson(b))
  );
}

/** The elements of a `nft --json list set|map`: the fast reader, else JSON. */
export function elementsOfListing(stdout: string, kind: "set" | "map", name: string): Element[] {
  const fast = fastElements(stdout, kind, name);
  if (fast) return fast;
  const body = parseListing(stdout).find(([k]) => k === kind)?.[1];
  return body ? elementsFromJson(kind, name, body) : [];
}
