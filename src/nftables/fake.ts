/**
 * An in-memory implementation of {@link Interface} for unit tests of code that uses the library:
 * no root, no nft binary, no kernel. It keeps the semantics of nft and the kernel that callers
 * rely on (atomic transactions, also over several tables; add vs create; ENOENT/EEXIST/EBUSY;
 * rule handles and positions; references from rules to chains, sets, maps and counters), and its
 * {@link FakeNFTables.dump} is the same canonical text the real implementation produces, so the
 * two can be compared.
 *
 * Fakes made from one {@link FakeRuleset} (or reached through `forTable`) share its tables, as
 * the tables of one network namespace share the kernel.
 *
 * It does not interpret rule text beyond finding references: rules are stored as written, so a
 * test that compares with the kernel should write rules as `nft list` prints them. As the kernel
 * path, it gives rule text only when asked for it.
 */
import { describeObject } from "./batch.js";
import { renderDump, priorityValue, type TableState } from "./dump.js";
import { NftError, ValidationError } from "./errors.js";
import { Draft } from "./fake_draft.js";
import { ERRNO_TEXT, OpFailure, copyElement, keyOf, type FakeTable } from "./fake_state.js";
import { parseDumpLine } from "./text.js";
import { Transaction } from "./transaction.js";
import {
  byFamilyThenName,
  type Chain,
  type Counter,
  type Element,
  type Family,
  type Features,
  type Interface,
  type ListKind,
  type Rule,
  type TableRef,
} from "./types.js";
import { validateName, validateScope } from "./validate.js";

export interface FakeNFTablesOptions {
  family: Family;
  table: string;
  /**
   * Behave like an nft with these features (for example `destroy: false` to get the same
   * refusals as nft 1.0.6 for destroying rules). Default: a current nft, with destroy.
   */
  features?: Features;
  /** The ruleset the table lives in; default: a new one of its own. */
  ruleset?: FakeRuleset;
}

/** What a fake without configured features reports: a current nft. */
export const FAKE_FEATURES: Features = { version: "1.1.1", destroy: true, json: true, objectComments: true };

const scopeKey = (family: Family, table: string): string => `${family} ${table}`;

/** The tables of one fake network namespace. */
export class FakeRuleset {
  /** By `<family> <name>`. */
  readonly tables = new Map<string, FakeTable>();
  /** The kernel's per-namespace table handle generator. */
  readonly tableHandles = { next: 1 };
  constructor(readonly features?: Features) {}

  /** The fake of one table of this ruleset. */
  table(family: Family, table: string): FakeNFTables {
    return new FakeNFTables({
      family,
      table,
      ruleset: this,
      ...(this.features && { features: this.features }),
    });
  }

  /** Every table's dump, in family then name order: what a test compares after a run. */
  async dumpAll(): Promise<string> {
    const out: string[] = [];
    for (const key of [...this.tables.keys()].sort()) {
      const [family, name] = key.split(" ") as [Family, string];
      out.push(await this.table(family, name).dump());
    }
    return out.join("");
  }

  /**
   * Runs transactions of any tables of this ruleset atomically: each on a draft of its table
   * (several for one table chain on the same draft), all kept only if every operation worked.
   */
  apply(txs: readonly Transaction[], commit: boolean, features: Features | undefined): void {
    const drafts = new Map<string, Draft>();
    const handles = { next: this.tableHandles.next };
    let ok = false;
    try {
      for (const tx of txs) {
        tx.validate(features);
        // Emulated destroy can refuse what it cannot express (a map element without its value).
        if (features && !features.destroy && tx.usesDestroy) tx.render(features);
        if (tx.size === 0) continue;
        const key = scopeKey(tx.scope.family, tx.scope.table);
        let draft = drafts.get(key);
        if (!draft) {
          draft = new Draft(tx.scope.family, this.tables.get(key), handles);
          drafts.set(key, draft);
        }
        runOperations(draft, tx);
      }
      ok = commit;
    } finally {
      if (!ok) for (const d of drafts.values()) d.rollback();
    }
    if (!commit) return;
    for (const [key, d] of drafts) {
      d.finish();
      if (d.table) this.tables.set(key, d.table);
      else this.tables.delete(key);
    }
    this.tableHandles.next = handles.next;
  }
}

function runOperations(draft: Draft, tx: Transaction): void {
  tx.operations.forEach((op, index) => {
    try {
      draft.apply(op);
    } catch (e) {
      if (!(e instanceof OpFailure)) throw e;
      const errno = ERRNO_TEXT[e.code] ?? e.code;
      throw new NftError(
        e.code,
        `fake nft: ${e.reason}: ${errno} (operation ${index + 1}: ${op.verb} ${describeObject(op.object)})`,
        op,
        index,
      );
    }
  });
}

export class FakeNFTables implements Interface {
  readonly family: Family;
  readonly table: string;
  readonly ruleset: FakeRuleset;
  private readonly featureSet: Features | undefined;

  constructor(opts: FakeNFTablesOptions) {
    ({ family: this.family, table: this.table } = validateScope(opts.family, opts.table));
    this.featureSet = opts.features;
    this.ruleset = opts.ruleset ?? new FakeRuleset(opts.features);
  }

  newTransaction(): Transaction {
    return new Transaction({ family: this.family, table: this.table });
  }

  forTable(family: Family, table: string): FakeNFTables {
    ({ family, table } = validateScope(family, table));
    return new FakeNFTables({
      family,
      table,
      ruleset: this.ruleset,
      ...(this.featureSet && { features: this.featureSet }),
    });
  }

  run(tx: Transaction): Promise<void> {
    return this.sync(() => this.apply([tx], true));
  }

  runAll(txs: readonly Transaction[]): Promise<void> {
    return this.sync(() => this.ruleset.apply(txs, true, this.featureSet));
  }

  check(tx: Transaction): Promise<void> {
    return this.sync(() => this.apply([tx], false));
  }

  features(): Promise<Features> {
    return Promise.resolve({ ...(this.featureSet ?? FAKE_FEATURES) });
  }

  private apply(txs: Transaction[], commit: boolean): void {
    for (const tx of txs)
      if (tx.scope.family !== this.family || tx.scope.table !== this.table)
        throw new ValidationError(
          "transaction",
          `was made for ${tx.scope.family} ${tx.scope.table}, not ${this.family} ${this.table}`,
        );
    this.ruleset.apply(txs, commit, this.featureSet);
  }

  private get state(): FakeTable | undefined {
    return this.ruleset.tables.get(scopeKey(this.family, this.table));
  }

  private requireTable(): FakeTable {
    const t = this.state;
    if (!t)
      throw new NftError("ENOENT", `fake nft: table ${this.family} ${this.table}: No such file or directory`);
    return t;
  }

  listTables(family?: Family): Promise<TableRef[]> {
    return this.sync(() =>
      [...this.ruleset.tables.keys()]
        .map((k) => {
          const [f, name] = k.split(" ") as [Family, string];
          return { family: f, name };
        })
        .filter((t) => family === undefined || t.family === family)
        .sort(byFamilyThenName),
    );
  }

  list(kind: ListKind): Promise<string[]> {
    return this.sync(() => {
      const t = this.requireTable();
      let names: string[];
      if (kind === "chains") names = [...t.chains.keys()];
      else if (kind === "sets" || kind === "maps") {
        const want = kind === "sets" ? "set" : "map";
        names = [...t.sets.values()].filter((s) => s.def.kind === want).map((s) => s.def.name);
      } else if (kind === "counters") names = [...t.counters.keys()];
      else names = [...t.flowtables.keys()];
      return names.sort();
    });
  }

  /** Rules of a chain with handle and comment; their text only with `text`, as the real one. */
  listRules(chain: string, opts: { text?: boolean } = {}): Promise<Rule[]> {
    return this.sync(() => {
      validateName("chain", chain);
      const c = this.requireTable().chains.get(chain);
      if (!c) throw new NftError("ENOENT", `fake nft: chain ${chain}: No such file or directory`);
      return c.rules.map((r) => {
        const out: Rule = { kind: "rule", chain, rule: opts.text ? r.rule : "", handle: r.handle };
        if (r.comment !== undefined) out.comment = r.comment;
        return out;
      });
    });
  }

  listElements(kind: "set" | "map", name: string): Promise<Element[]> {
    return this.sync(() => {
      validateName(kind, name);
      const s = this.requireTable().sets.get(name);
      if (!s || s.def.kind !== kind)
        throw new NftError("ENOENT", `fake nft: ${kind} ${name}: No such file or directory`);
      const withCounter = s.def.counter === true;
      return [...s.elements.values()].map((e) => {
        const out = copyElement(e);
        if (withCounter || e.counter) Object.assign(out, { counter: true, packets: 0, bytes: 0 });
        return out;
      });
    });
  }

  getElements(keys: readonly Element[]): Promise<Element[]> {
    return this.sync(() => {
      const t = this.requireTable();
      return keys.map((k) => {
        const kind = k.map !== undefined ? "map" : "set";
        const name = k.map ?? k.set ?? "";
        validateName(kind, name);
        const s = t.sets.get(name);
        const found = s?.def.kind === kind ? s.elements.get(keyOf(k.key)) : undefined;
        if (!found)
          throw new NftError(
            "ENOENT",
            `fake nft: element ${keyOf(k.key)} of ${kind} ${name}: No such file or directory`,
          );
        return copyElement(found);
      });
    });
  }

  listCounters(): Promise<Counter[]> {
    return this.sync(() =>
      [...this.requireTable().counters.values()]
        .map((c) => ({ ...c }))
        .sort((a, b) => (a.name < b.name ? -1 : 1)),
    );
  }

  listTable(opts: { text?: boolean } = {}): Promise<TableState> {
    return this.sync(() => this.tableState(opts.text === true));
  }

  dump(): Promise<string> {
    return this.sync(() => renderDump({ family: this.family, table: this.table }, this.tableState(true)));
  }

  /** The state in the shape renderDump takes, normalised like the kernel's listing. */
  private tableState(text: boolean): TableState {
    const t = this.requireTable();
    const state: TableState = {
      chains: [],
      rules: new Map(),
      sets: [],
      elements: new Map(),
      counters: [...t.counters.values()].map((c) => ({ ...c })),
      flowtables: [...t.flowtables.values()].map((f) => ({ ...f })),
    };
    if (t.comment !== undefined) state.comment = t.comment;
    for (const c of t.chains.values()) {
      const def: Chain = { ...c.def, handle: c.handle };
      if (def.type !== undefined) {
        def.priority = priorityValue(this.family, def.priority);
        def.policy ??= "accept";
      }
      state.chains.push(def);
      state.rules.set(
        c.def.name,
        c.rules.map((r) => {
          const rule: Rule = { kind: "rule", chain: c.def.name, rule: text ? r.rule : "", handle: r.handle };
          if (r.comment !== undefined) rule.comment = r.comment;
          return rule;
        }),
      );
    }
    for (const s of t.sets.values()) {
      state.sets.push({ ...s.def, handle: s.handle });
      state.elements.set(s.def.name, [...s.elements.values()].map(copyElement));
    }
    return state;
  }

  /**
   * Adds the objects of nft text in the canonical form {@link dump} writes (one `add` command
   * per line) to the fake, atomically: `fake2.load(await fake1.dump())` copies fake1's table.
   */
  load(text: string): void {
    const tx = this.newTransaction();
    text.split("\n").forEach((line, i) => {
      if (line.trim() === "") return;
      try {
        for (const obj of parseDumpLine(line, this.family, this.table)) tx.add(obj);
      } catch (e) {
        if (e instanceof NftError) e.message = `line ${i + 1}: ${e.message}`;
        throw e;
      }
    });
    this.apply([tx], true);
  }

  private sync<T>(fn: () => T): Promise<T> {
    return Promise.resolve().then(fn);
  }
}
