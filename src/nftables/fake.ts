/**
 * An in-memory implementation of {@link Interface} for unit tests of code that uses the library:
 * no root, no nft binary, no kernel. It keeps the semantics of nft and the kernel that callers
 * rely on (atomic transactions, add vs create, ENOENT/EEXIST/EBUSY, rule handles and positions,
 * references from rules to chains, sets, maps and counters), and its {@link FakeNFTables.dump}
 * is the same canonical text the real implementation produces, so the two can be compared.
 *
 * It does not interpret rule text beyond finding references: rules are stored as written, so a
 * test that compares with the kernel should write rules as `nft list` prints them.
 */
import { describeObject } from "./batch.js";
import { renderDump, type TableState } from "./dump.js";
import { NftError, ValidationError, type NftErrorCode } from "./errors.js";
import { Transaction } from "./transaction.js";
import {
  type Chain,
  type ChainHook,
  type ChainPolicy,
  type ChainType,
  type Counter,
  type Element,
  type Family,
  type Features,
  type Flowtable,
  type Interface,
  type ListKind,
  type NMap,
  type NSet,
  type NftObject,
  type Operation,
  type Rule,
  type SetFlag,
  type SetPolicy,
} from "./types.js";
import { validateName, validateScope } from "./validate.js";
import { priorityValue } from "./dump.js";

export interface FakeNFTablesOptions {
  family: Family;
  table: string;
  /**
   * Behave like an nft with these features (for example `destroy: false` to get the same
   * refusals as nft 1.0.6 for destroying rules). Default: a current nft, with destroy.
   */
  features?: Features;
}

interface FakeRule {
  handle: number;
  rule: string;
  comment?: string;
  /**
   * Deleted earlier in the running transaction. nft resolves rule positions against a cache that
   * still holds such rules, and the kernel accepts them as positions, so they count until commit.
   */
  deleted?: true;
}

interface FakeChain {
  def: Chain;
  handle: number;
  rules: FakeRule[];
}

interface FakeSet {
  def: NSet | NMap;
  handle: number;
  /** By key text (quotes stripped), in insertion order. */
  elements: Map<string, Element>;
}

interface FakeTable {
  comment?: string;
  handle: number;
  /** The kernel's per-table handle generator, shared by every object of the table. */
  nextHandle: number;
  chains: Map<string, FakeChain>;
  sets: Map<string, FakeSet>;
  counters: Map<string, Counter>;
  flowtables: Map<string, Flowtable & { handle: number }>;
}

/** A failure inside the fake, turned into an NftError naming the operation by the caller. */
class OpFailure extends Error {
  constructor(
    readonly code: NftErrorCode,
    readonly reason: string,
  ) {
    super(reason);
  }
}

const ERRNO_TEXT: Partial<Record<NftErrorCode, string>> = {
  ENOENT: "No such file or directory",
  EEXIST: "File exists",
  EBUSY: "Device or resource busy",
  EINVAL: "Invalid argument",
  ENOTSUP: "Operation not supported",
};

function fail(code: NftErrorCode, reason: string): never {
  throw new OpFailure(code, reason);
}

/**
 * Strips quotes around a bare word, so `"eth0"` and `eth0` are one key and list as the kernel's
 * JSON gives them back; strings that need their quotes keep them, as the real listing does.
 */
function unquote(part: string): string {
  const inner =
    part.length >= 2 && part.startsWith('"') && part.endsWith('"') ? part.slice(1, -1) : undefined;
  return inner !== undefined && /^[A-Za-z0-9_.:/*-]+$/.test(inner) ? inner : part;
}

function keyOf(key: readonly string[]): string {
  return key.map(unquote).join(" . ");
}

function copyElement(e: Element): Element {
  const c: Element = { ...e, key: [...e.key] };
  if (e.value) c.value = [...e.value];
  return c;
}

/** Rule text with quoted strings blanked, so words inside strings are not taken for references. */
function withoutStrings(text: string): string {
  return text.replace(/"[^"]*"/g, '""');
}

const NAME = String.raw`[A-Za-z_][A-Za-z0-9_./-]*`;
const JUMP_RE = new RegExp(String.raw`\b(?:jump|goto) (${NAME})`, "g");
const AT_RE = new RegExp(String.raw`(\bflow (?:add|offload) )?@(${NAME})`, "g");
const COUNTER_RE = new RegExp(String.raw`\bcounter name "?(${NAME})"?`, "g");

/** What a rule text refers to by name. */
interface References {
  chains: string[];
  sets: string[];
  counters: string[];
  flowtables: string[];
}

function referencesOf(text: string): References {
  const refs: References = { chains: [], sets: [], counters: [], flowtables: [] };
  for (const m of text.matchAll(COUNTER_RE)) refs.counters.push(m[1]!);
  const bare = withoutStrings(text);
  for (const m of bare.matchAll(JUMP_RE)) refs.chains.push(m[1]!);
  for (const m of bare.matchAll(AT_RE)) (m[1] ? refs.flowtables : refs.sets).push(m[2]!);
  return refs;
}

/** The chain a map value jumps or goes to, if it is such a verdict. */
function verdictTarget(value: readonly string[] | undefined): string | undefined {
  if (value?.length !== 1) return undefined;
  return /^(?:jump|goto) (\S+)$/.exec(value[0]!)?.[1];
}

function sameStrings(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = [...(a ?? [])].sort();
  const y = [...(b ?? [])].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

export class FakeNFTables implements Interface {
  readonly family: Family;
  readonly table: string;
  private readonly features: Features | undefined;
  private state: FakeTable | undefined;
  /** Table handles come from a per-namespace generator in the kernel. */
  private nextTableHandle = 1;

  constructor(opts: FakeNFTablesOptions) {
    ({ family: this.family, table: this.table } = validateScope(opts.family, opts.table));
    this.features = opts.features;
  }

  newTransaction(): Transaction {
    return new Transaction({ family: this.family, table: this.table });
  }

  run(tx: Transaction): Promise<void> {
    return Promise.resolve().then(() => this.apply(tx, true));
  }

  check(tx: Transaction): Promise<void> {
    return Promise.resolve().then(() => this.apply(tx, false));
  }

  /** Runs a transaction on a copy of the state and keeps the copy only if every operation worked. */
  private apply(tx: Transaction, commit: boolean): void {
    if (tx.scope.family !== this.family || tx.scope.table !== this.table)
      throw new ValidationError(
        "transaction",
        `was made for ${tx.scope.family} ${tx.scope.table}, not ${this.family} ${this.table}`,
      );
    tx.validate(this.features);
    // Emulated destroy can refuse what it cannot express (a map element without its value).
    if (this.features && !this.features.destroy && tx.usesDestroy) tx.render(this.features);
    if (tx.size === 0) return;
    const draft = new Draft(this.family, this.state, this.nextTableHandle);
    let ok = false;
    try {
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
      ok = commit;
    } finally {
      if (!ok) draft.rollback();
    }
    if (!commit) return;
    draft.finish();
    this.state = draft.table;
    this.nextTableHandle = draft.nextTableHandle;
  }

  private requireTable(): FakeTable {
    if (!this.state)
      throw new NftError("ENOENT", `fake nft: table ${this.family} ${this.table}: No such file or directory`);
    return this.state;
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

  /** Rules of a chain with handle, comment and text (the options of the real one are accepted). */
  listRules(chain: string, _opts: { text?: boolean } = {}): Promise<Rule[]> {
    return this.sync(() => {
      validateName("chain", chain);
      const c = this.requireTable().chains.get(chain);
      if (!c) throw new NftError("ENOENT", `fake nft: chain ${chain}: No such file or directory`);
      return c.rules.map((r) => {
        const out: Rule = { kind: "rule", chain, rule: r.rule, handle: r.handle };
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

  listCounters(): Promise<Counter[]> {
    return this.sync(() =>
      [...this.requireTable().counters.values()]
        .map((c) => ({ ...c }))
        .sort((a, b) => (a.name < b.name ? -1 : 1)),
    );
  }

  dump(): Promise<string> {
    return this.sync(() => renderDump({ family: this.family, table: this.table }, this.tableState()));
  }

  /** The state in the shape renderDump takes, normalised like the kernel's listing. */
  private tableState(): TableState {
    const t = this.requireTable();
    const state: TableState = {
      chains: [],
      rules: new Map(),
      sets: [],
      elements: new Map(),
      counters: [...t.counters.values()],
      flowtables: [...t.flowtables.values()],
    };
    if (t.comment !== undefined) state.comment = t.comment;
    for (const c of t.chains.values()) {
      const def: Chain = { ...c.def };
      if (def.type !== undefined) {
        def.priority = priorityValue(this.family, def.priority);
        def.policy ??= "accept";
      }
      state.chains.push(def);
      state.rules.set(
        c.def.name,
        c.rules.map((r) => ({ kind: "rule", chain: c.def.name, rule: r.rule, comment: r.comment })),
      );
    }
    for (const s of t.sets.values()) {
      state.sets.push(s.def);
      state.elements.set(s.def.name, [...s.elements.values()]);
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
    this.apply(tx, true);
  }

  private sync<T>(fn: () => T): Promise<T> {
    return Promise.resolve().then(fn);
  }
}

/**
 * A transaction in progress: a copy of the table that operations change. Chains and sets are
 * copied on first change; element maps are too big to copy for every small transaction, so they
 * are changed in place with an undo log that {@link rollback} replays.
 */
class Draft {
  table: FakeTable | undefined;
  private readonly owned = new WeakSet<object>();
  private readonly undo: Array<[Map<string, Element>, string, Element | undefined]> = [];

  constructor(
    private readonly family: Family,
    base: FakeTable | undefined,
    public nextTableHandle: number,
  ) {
    this.table = base && {
      ...base,
      chains: new Map(base.chains),
      sets: new Map(base.sets),
      counters: new Map(base.counters),
      flowtables: new Map(base.flowtables),
    };
  }

  private requireTable(): FakeTable {
    if (!this.table) fail("ENOENT", "table does not exist");
    return this.table;
  }

  private handle(): number {
    return this.requireTable().nextHandle++;
  }

  /** A chain this draft may change. */
  private mutableChain(name: string): FakeChain | undefined {
    const t = this.requireTable();
    const c = t.chains.get(name);
    if (!c || this.owned.has(c)) return c;
    const copy = { ...c, rules: [...c.rules] };
    this.owned.add(copy);
    t.chains.set(name, copy);
    return copy;
  }

  private mutableSet(name: string): FakeSet | undefined {
    const t = this.requireTable();
    const s = t.sets.get(name);
    if (!s || this.owned.has(s)) return s;
    const copy = { ...s };
    this.owned.add(copy);
    t.sets.set(name, copy);
    return copy;
  }

  private setElement(set: FakeSet, key: string, elem: Element | undefined): void {
    this.undo.push([set.elements, key, set.elements.get(key)]);
    if (elem) set.elements.set(key, elem);
    else set.elements.delete(key);
  }

  /** Drops the rules deleted by the transaction, which positions no longer need. */
  finish(): void {
    for (const c of this.table?.chains.values() ?? [])
      if (this.owned.has(c) && c.rules.some((r) => r.deleted)) c.rules = c.rules.filter((r) => !r.deleted);
  }

  /** Puts back every element this draft changed in place. */
  rollback(): void {
    for (const [map, key, old] of this.undo.splice(0).reverse()) {
      if (old) map.set(key, old);
      else map.delete(key);
    }
  }

  apply(op: Operation): void {
    const { verb, object: o } = op;
    switch (o.kind) {
      case "table":
        return this.tableOp(verb, o.comment);
      case "chain":
        return this.chainOp(verb, o);
      case "rule":
        return this.ruleOp(verb, o);
      case "set":
      case "map":
        return this.setOp(verb, o);
      case "element":
        return this.elementOp(verb, o);
      case "counter":
        return this.counterOp(verb, o);
      case "flowtable":
        return this.flowtableOp(verb, o);
    }
  }

  private tableOp(verb: Operation["verb"], comment: string | undefined): void {
    switch (verb) {
      case "add":
      case "create":
        if (this.table) {
          if (verb === "create") fail("EEXIST", "table exists");
          return;
        }
        this.table = {
          handle: this.nextTableHandle++,
          nextHandle: 1,
          chains: new Map(),
          sets: new Map(),
          counters: new Map(),
          flowtables: new Map(),
        };
        if (comment !== undefined) this.table.comment = comment;
        return;
      case "delete":
        this.requireTable();
        this.table = undefined;
        return;
      case "destroy":
        this.table = undefined;
        return;
      case "flush":
        // As nft does: every rule goes; chains, sets and their elements stay.
        for (const name of this.requireTable().chains.keys()) this.mutableChain(name)!.rules = [];
        return;
      default:
        fail("EINVAL", `cannot ${verb} a table`);
    }
  }

  private chainOp(verb: Operation["verb"], c: Chain): void {
    const t = this.requireTable();
    const existing = t.chains.get(c.name);
    switch (verb) {
      case "add":
      case "create": {
        if (existing) {
          if (verb === "create") fail("EEXIST", `chain ${c.name} exists`);
          return this.updateChain(existing, c);
        }
        const def: Chain = { kind: "chain", name: c.name };
        if (c.type !== undefined) {
          def.type = c.type;
          def.hook = c.hook;
          if (c.device !== undefined) def.device = c.device;
          def.priority = c.priority;
          if (c.policy !== undefined) def.policy = c.policy;
        }
        if (c.comment !== undefined) def.comment = c.comment;
        const chain: FakeChain = { def, handle: this.handle(), rules: [] };
        this.owned.add(chain);
        t.chains.set(c.name, chain);
        return;
      }
      case "delete":
      case "destroy": {
        if (!existing) {
          if (verb === "delete") fail("ENOENT", `chain ${c.name} does not exist`);
          return;
        }
        if (existing.rules.some((r) => !r.deleted)) fail("EBUSY", `chain ${c.name} has rules`);
        const user = this.chainUser(c.name);
        if (user) fail("EBUSY", `chain ${c.name} is the target of ${user}`);
        t.chains.delete(c.name);
        return;
      }
      case "flush":
        if (!existing) fail("ENOENT", `chain ${c.name} does not exist`);
        this.mutableChain(c.name)!.rules = [];
        return;
      default:
        fail("EINVAL", `cannot ${verb} a chain`);
    }
  }

  /** `add chain` of an existing chain: no-op, except a base chain's policy, as in the kernel. */
  private updateChain(existing: FakeChain, c: Chain): void {
    if (c.type === undefined) return;
    const old = existing.def;
    if (old.type === undefined) fail("EEXIST", `chain ${c.name} exists and is not a base chain`);
    const family = this.family;
    if (
      old.type !== c.type ||
      old.hook !== c.hook ||
      old.device !== c.device ||
      priorityValue(family, old.priority) !== priorityValue(family, c.priority)
    )
      fail("ENOTSUP", `base chain ${c.name} exists with another type, hook or priority`);
    if (c.policy !== undefined && c.policy !== old.policy)
      this.mutableChain(c.name)!.def = { ...old, policy: c.policy };
  }

  /** Describes a rule or map element that jumps or goes to a chain, if there is one. */
  private chainUser(chain: string): string | undefined {
    const t = this.requireTable();
    for (const c of t.chains.values())
      for (const r of c.rules)
        if (!r.deleted && referencesOf(r.rule).chains.includes(chain))
          return `rule ${r.handle} of chain ${c.def.name}`;
    for (const s of t.sets.values()) {
      if (s.def.kind !== "map") continue;
      for (const e of s.elements.values())
        if (verdictTarget(e.value) === chain) return `element ${keyOf(e.key)} of map ${s.def.name}`;
    }
    return undefined;
  }

  /** Describes a rule that uses a set, map, counter or flowtable, if there is one. */
  private objectUser(kind: "sets" | "counters" | "flowtables", name: string): string | undefined {
    for (const c of this.requireTable().chains.values())
      for (const r of c.rules)
        if (!r.deleted && referencesOf(r.rule)[kind].includes(name))
          return `rule ${r.handle} of chain ${c.def.name}`;
    return undefined;
  }

  private checkReferences(text: string): void {
    const t = this.requireTable();
    const refs = referencesOf(text);
    for (const name of refs.chains)
      if (!t.chains.has(name)) fail("ENOENT", `chain ${name} (jump or goto target) does not exist`);
    for (const name of refs.sets) if (!t.sets.has(name)) fail("ENOENT", `set or map @${name} does not exist`);
    for (const name of refs.counters)
      if (!t.counters.has(name)) fail("ENOENT", `counter ${name} does not exist`);
    for (const name of refs.flowtables)
      if (!t.flowtables.has(name)) fail("ENOENT", `flowtable @${name} does not exist`);
  }

  private ruleOp(verb: Operation["verb"], r: Rule): void {
    if (!this.requireTable().chains.has(r.chain)) fail("ENOENT", `chain ${r.chain} does not exist`);
    const chain = this.mutableChain(r.chain)!;
    const at = (): number => {
      if (r.index !== undefined) {
        if (r.index >= chain.rules.length) fail("ENOENT", `chain ${r.chain} has no rule at index ${r.index}`);
        return r.index;
      }
      const i = chain.rules.findIndex((x) => x.handle === r.handle);
      if (i < 0) fail("ENOENT", `chain ${r.chain} has no rule with handle ${r.handle}`);
      return i;
    };
    const live = (): number => chain.rules.findIndex((x) => x.handle === r.handle && !x.deleted);
    const positioned = r.index !== undefined || r.handle !== undefined;
    switch (verb) {
      case "add":
      case "insert": {
        const pos = positioned ? at() + (verb === "add" ? 1 : 0) : verb === "add" ? chain.rules.length : 0;
        this.checkReferences(r.rule);
        const rule: FakeRule = { handle: this.handle(), rule: r.rule };
        if (r.comment !== undefined) rule.comment = r.comment;
        chain.rules.splice(pos, 0, rule);
        return;
      }
      case "replace": {
        const i = live();
        if (i < 0) fail("ENOENT", `chain ${r.chain} has no rule with handle ${r.handle}`);
        this.checkReferences(r.rule);
        const rule: FakeRule = { handle: chain.rules[i]!.handle, rule: r.rule };
        if (r.comment !== undefined) rule.comment = r.comment;
        chain.rules[i] = rule;
        return;
      }
      case "delete":
      case "destroy": {
        const i = live();
        if (i < 0) {
          if (verb === "delete") fail("ENOENT", `chain ${r.chain} has no rule with handle ${r.handle}`);
          return;
        }
        chain.rules[i] = { ...chain.rules[i]!, deleted: true };
        return;
      }
      default:
        fail("EINVAL", `cannot ${verb} a rule`);
    }
  }

  private setOp(verb: Operation["verb"], s: NSet | NMap): void {
    const t = this.requireTable();
    const existing = t.sets.get(s.name);
    const kindMatches = existing?.def.kind === s.kind;
    switch (verb) {
      case "add":
      case "create": {
        if (existing) {
          if (verb === "create") fail("EEXIST", `${existing.def.kind} ${s.name} exists`);
          const old = existing.def;
          if (
            !kindMatches ||
            (old.type ?? old.typeof) !== (s.type ?? s.typeof) ||
            !sameStrings(old.flags, s.flags) ||
            old.timeout !== s.timeout
          )
            fail("EEXIST", `${old.kind} ${s.name} exists with another type or flags`);
          return;
        }
        const def = { ...s };
        delete def.handle;
        if (def.flags) def.flags = [...def.flags];
        const set: FakeSet = { def, handle: this.handle(), elements: new Map() };
        this.owned.add(set);
        t.sets.set(s.name, set);
        return;
      }
      case "delete":
      case "destroy": {
        if (!existing || !kindMatches) {
          if (verb === "delete") fail("ENOENT", `${s.kind} ${s.name} does not exist`);
          return;
        }
        const user = this.objectUser("sets", s.name);
        if (user) fail("EBUSY", `${s.kind} ${s.name} is used by ${user}`);
        t.sets.delete(s.name);
        return;
      }
      case "flush":
        if (!existing || !kindMatches) fail("ENOENT", `${s.kind} ${s.name} does not exist`);
        this.mutableSet(s.name)!.elements = new Map();
        return;
      default:
        fail("EINVAL", `cannot ${verb} a ${s.kind}`);
    }
  }

  private elementOp(verb: Operation["verb"], e: Element): void {
    const kind = e.set !== undefined ? "set" : "map";
    const name = e.set ?? e.map ?? "";
    const existingSet = this.requireTable().sets.get(name);
    if (!existingSet || existingSet.def.kind !== kind) fail("ENOENT", `${kind} ${name} does not exist`);
    const set = this.mutableSet(name)!;
    const key = keyOf(e.key);
    const old = set.elements.get(key);
    switch (verb) {
      case "add":
      case "create": {
        if (e.timeout !== undefined && !set.def.flags?.includes("timeout"))
          fail("EINVAL", `${kind} ${name} has no timeout flag`);
        const value = e.value?.map(unquote);
        if (kind === "map") {
          const target = verdictTarget(value);
          if (target !== undefined && !this.requireTable().chains.has(target))
            fail("ENOENT", `chain ${target} (verdict of element ${key}) does not exist`);
        }
        if (old) {
          if (verb === "create") fail("EEXIST", `element ${key} exists`);
          if (kind === "map" && (old.value ?? []).join(" . ") !== (value ?? []).join(" . "))
            fail("EEXIST", `element ${key} exists with another value`);
          return;
        }
        const elem: Element =
          kind === "set"
            ? { kind: "element", set: name, key: e.key.map(unquote) }
            : { kind: "element", map: name, key: e.key.map(unquote) };
        if (value) elem.value = value;
        if (e.comment !== undefined) elem.comment = e.comment;
        if (e.timeout !== undefined) elem.timeout = e.timeout;
        if (e.counter) elem.counter = true;
        this.setElement(set, key, elem);
        return;
      }
      case "delete":
      case "destroy":
        if (!old) {
          if (verb === "delete") fail("ENOENT", `element ${key} does not exist`);
          return;
        }
        this.setElement(set, key, undefined);
        return;
      default:
        fail("EINVAL", `cannot ${verb} an element`);
    }
  }

  private counterOp(verb: Operation["verb"], c: Counter): void {
    const t = this.requireTable();
    const existing = t.counters.get(c.name);
    switch (verb) {
      case "add":
      case "create": {
        if (existing) {
          if (verb === "create") fail("EEXIST", `counter ${c.name} exists`);
          return;
        }
        const counter: Counter = {
          kind: "counter",
          name: c.name,
          packets: 0,
          bytes: 0,
          handle: this.handle(),
        };
        if (c.comment !== undefined) counter.comment = c.comment;
        t.counters.set(c.name, counter);
        return;
      }
      case "delete":
      case "destroy": {
        if (!existing) {
          if (verb === "delete") fail("ENOENT", `counter ${c.name} does not exist`);
          return;
        }
        const user = this.objectUser("counters", c.name);
        if (user) fail("EBUSY", `counter ${c.name} is used by ${user}`);
        t.counters.delete(c.name);
        return;
      }
      case "reset":
        if (!existing) fail("ENOENT", `counter ${c.name} does not exist`);
        t.counters.set(c.name, { ...existing, packets: 0, bytes: 0 });
        return;
      default:
        fail("EINVAL", `cannot ${verb} a counter`);
    }
  }

  private flowtableOp(verb: Operation["verb"], f: Flowtable): void {
    const t = this.requireTable();
    const existing = t.flowtables.get(f.name);
    switch (verb) {
      case "add":
      case "create": {
        if (existing) {
          if (verb === "create") fail("EEXIST", `flowtable ${f.name} exists`);
          return;
        }
        const ft: Flowtable & { handle: number } = {
          kind: "flowtable",
          name: f.name,
          priority: f.priority ?? "filter",
          handle: this.handle(),
        };
        if (f.devices?.length) ft.devices = [...f.devices];
        t.flowtables.set(f.name, ft);
        return;
      }
      case "delete":
      case "destroy": {
        if (!existing) {
          if (verb === "delete") fail("ENOENT", `flowtable ${f.name} does not exist`);
          return;
        }
        const user = this.objectUser("flowtables", f.name);
        if (user) fail("EBUSY", `flowtable ${f.name} is used by ${user}`);
        t.flowtables.delete(f.name);
        return;
      }
      default:
        fail("EINVAL", `cannot ${verb} a flowtable`);
    }
  }
}

// ---- Parsing the canonical dump text back into objects ----

/** Splits at a separator outside double quotes and braces. */
function splitTop(text: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '"') quoted = !quoted;
    else if (quoted) continue;
    else if (ch === "{") depth++;
    else if (ch === "}") depth--;
    else if (depth === 0 && text.startsWith(sep, i)) {
      out.push(text.slice(start, i));
      start = i + sep.length;
      i += sep.length - 1;
    }
  }
  out.push(text.slice(start));
  return out;
}

/** The `key value ;` clauses of a `{ ... }` spec as [word, rest] pairs. */
function specClauses(spec: string): Array<[string, string]> {
  const body = spec.trim().replace(/^\{/, "").replace(/\}$/, "");
  return splitTop(body, ";")
    .map((c) => c.trim())
    .filter((c) => c !== "")
    .map((c) => {
      const m = /^(\S+)\s*(.*)$/.exec(c)!;
      return [m[1]!, m[2]!];
    });
}

function parseQuoted(field: string, text: string): string {
  const m = /^"([^"]*)"$/.exec(text.trim());
  if (!m) throw new ValidationError(field, `expected a quoted string, got ${JSON.stringify(text)}`);
  return m[1]!;
}

function parseSeconds(field: string, text: string): number {
  const m = /^(\d+)s$/.exec(text.trim());
  if (!m) throw new ValidationError(field, `expected seconds like 30s, got ${JSON.stringify(text)}`);
  return Number(m[1]);
}

function parsePriority(text: string): number | string {
  const t = text.trim();
  return /^-?\d+$/.test(t) ? Number(t) : t;
}

/** One element of a dump; those with a value belong to a map. */
function parseElement(name: string, text: string): Element {
  const [left = "", ...right] = splitTop(text.trim(), " : ");
  const e: Element = right.length
    ? { kind: "element", map: name, key: [] }
    : { kind: "element", set: name, key: [] };
  let keyText = left;
  const comment = / comment ("[^"]*")$/.exec(keyText);
  if (comment) {
    e.comment = parseQuoted("element.comment", comment[1]!);
    keyText = keyText.slice(0, comment.index);
  }
  // The order elementText writes: key, counter, timeout, comment.
  const timeout = / timeout (\d+s)$/.exec(keyText);
  if (timeout) {
    e.timeout = parseSeconds("element.timeout", timeout[1]!);
    keyText = keyText.slice(0, timeout.index);
  }
  if (keyText.endsWith(" counter")) {
    e.counter = true;
    keyText = keyText.slice(0, -" counter".length);
  }
  e.key = splitTop(keyText, " . ").map((p) => p.trim());
  if (right.length) e.value = splitTop(right.join(" : "), " . ").map((p) => p.trim());
  return e;
}

/** Objects of one line of canonical dump text. */
function parseDumpLine(line: string, family: Family, table: string): NftObject[] {
  const m = /^add (table|counter|flowtable|chain|set|map|rule|element) (\S+) (\S+)(?: (.*))?$/.exec(
    line.trim(),
  );
  if (!m) throw new ValidationError("load", `not a canonical add command: ${JSON.stringify(line)}`);
  const [, kind, fam, tbl, rest = ""] = m;
  if (fam !== family || tbl !== table)
    throw new ValidationError("load", `line is for table ${fam} ${tbl}, not ${family} ${table}`);
  if (kind === "table") {
    const t: NftObject = { kind: "table" };
    for (const [word, arg] of rest ? specClauses(rest) : [])
      if (word === "comment") t.comment = parseQuoted("table.comment", arg);
    return [t];
  }
  const nm = /^(\S+)(?: (.*))?$/.exec(rest);
  if (!nm) throw new ValidationError("load", `missing name: ${JSON.stringify(line)}`);
  const name = nm[1]!;
  const tail = nm[2] ?? "";
  switch (kind) {
    case "counter": {
      const c: Counter = { kind: "counter", name };
      for (const [word, arg] of tail ? specClauses(tail) : [])
        if (word === "comment") c.comment = parseQuoted("counter.comment", arg);
      return [c];
    }
    case "flowtable": {
      const f: Flowtable = { kind: "flowtable", name };
      for (const [word, arg] of specClauses(tail)) {
        if (word === "hook") {
          const p = /priority (.*)$/.exec(arg);
          if (p) f.priority = parsePriority(p[1]!) as Flowtable["priority"];
        } else if (word === "devices") f.devices = [...arg.matchAll(/"([^"]*)"/g)].map((d) => d[1]!);
      }
      return [f];
    }
    case "chain": {
      const c: Chain = { kind: "chain", name };
      for (const [word, arg] of tail ? specClauses(tail) : []) {
        if (word === "type") {
          const t = /^(\S+) hook (\S+)(?: device ("[^"]*"))? priority (.+)$/.exec(arg);
          if (!t) throw new ValidationError("chain.type", `cannot read ${JSON.stringify(arg)}`);
          c.type = t[1] as ChainType;
          c.hook = t[2] as ChainHook;
          if (t[3] !== undefined) c.device = parseQuoted("chain.device", t[3]);
          c.priority = parsePriority(t[4]!) as Chain["priority"];
        } else if (word === "policy") c.policy = arg as ChainPolicy;
        else if (word === "comment") c.comment = parseQuoted("chain.comment", arg);
      }
      return [c];
    }
    case "set":
    case "map": {
      const s = { kind, name } as NSet | NMap;
      for (const [word, arg] of specClauses(tail)) {
        if (word === "type") s.type = arg;
        else if (word === "typeof") s.typeof = arg;
        else if (word === "flags") s.flags = arg.split(",").map((f) => f.trim()) as SetFlag[];
        else if (word === "timeout") s.timeout = parseSeconds(`${kind}.timeout`, arg);
        else if (word === "gc-interval") s.gcInterval = parseSeconds(`${kind}.gcInterval`, arg);
        else if (word === "size") s.size = Number(arg);
        else if (word === "policy") s.policy = arg as SetPolicy;
        else if (word === "auto-merge") s.autoMerge = true;
        else if (word === "counter") s.counter = true;
        else if (word === "comment") s.comment = parseQuoted(`${kind}.comment`, arg);
      }
      return [s];
    }
    case "rule": {
      const r: Rule = { kind: "rule", chain: name, rule: tail };
      const c = / comment ("[^"]*")$/.exec(tail);
      if (c) {
        r.comment = parseQuoted("rule.comment", c[1]!);
        r.rule = tail.slice(0, c.index);
      }
      return [r];
    }
    default: {
      const body = /^\{ (.*) \}$/.exec(tail.trim());
      if (!body) throw new ValidationError("load", `cannot read elements of ${name}`);
      return splitTop(body[1]!, ", ").map((part) => parseElement(name, part));
    }
  }
}
