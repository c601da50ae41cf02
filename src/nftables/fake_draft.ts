/** A transaction in progress on one table of the fake: the semantics of nft and the kernel. */
import { priorityValue } from "./dump.js";
import type { Chain, Counter, Element, Family, Flowtable, NMap, NSet, Operation, Rule } from "./types.js";
import {
  chainUser,
  checkReferences,
  fail,
  keyOf,
  isCounterMap,
  objectUser,
  sameStrings,
  unquote,
  verdictTarget,
  type FakeChain,
  type FakeRule,
  type FakeSet,
  type FakeTable,
} from "./fake_state.js";

/**
 * A transaction in progress: a copy of the table that operations change. Chains and sets are
 * copied on first change; element maps are too big to copy for every small transaction, so they
 * are changed in place with an undo log that {@link rollback} replays.
 */
export class Draft {
  table: FakeTable | undefined;
  private readonly owned = new WeakSet<object>();
  private readonly undo: Array<[Map<string, Element>, string, Element | undefined]> = [];

  constructor(
    private readonly family: Family,
    base: FakeTable | undefined,
    /** The kernel's per-namespace table handle generator, shared by the drafts of one run. */
    private readonly tableHandles: { next: number },
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
          handle: this.tableHandles.next++,
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
        const user = chainUser(this.requireTable(), c.name);
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
        checkReferences(this.requireTable(), r.rule);
        const rule: FakeRule = { handle: this.handle(), rule: r.rule };
        if (r.comment !== undefined) rule.comment = r.comment;
        chain.rules.splice(pos, 0, rule);
        return;
      }
      case "replace": {
        const i = live();
        if (i < 0) fail("ENOENT", `chain ${r.chain} has no rule with handle ${r.handle}`);
        checkReferences(this.requireTable(), r.rule);
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
        const user = objectUser(this.requireTable(), "sets", s.name);
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
          const counter = isCounterMap(set.def) ? value?.[0] : undefined;
          if (counter !== undefined && !this.requireTable().counters.has(counter))
            fail("ENOENT", `counter ${counter} (value of element ${key}) does not exist`);
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
        const user = objectUser(this.requireTable(), "counters", c.name);
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
        const user = objectUser(this.requireTable(), "flowtables", f.name);
        if (user) fail("EBUSY", `flowtable ${f.name} is used by ${user}`);
        t.flowtables.delete(f.name);
        return;
      }
      default:
        fail("EINVAL", `cannot ${verb} a flowtable`);
    }
  }
}
