/**
 * A transaction in progress on one table of the fake: the semantics of nft and the kernel for
 * tables, chains and rules here; sets and elements in fake_draft_sets.ts, counters and
 * flowtables in fake_draft_objects.ts.
 */
import { priorityValue } from "./dump.js";
import { elementOp, setOp } from "./fake_draft_sets.js";
import { counterOp, flowtableOp } from "./fake_draft_objects.js";
import type { Chain, Element, Family, Operation, Rule } from "./types.js";
import {
  chainUser,
  checkReferences,
  fail,
  type FakeChain,
  type FakeRule,
  type FakeSet,
  type FakeTable,
} from "./fake_state.js";

/** What the operations on sets, elements and other objects need of a draft. */
export interface DraftAccess {
  requireTable(): FakeTable;
  /** The table's next object handle. */
  handle(): number;
  /** A set this draft may change (copied on first change). */
  mutableSet(name: string): FakeSet | undefined;
  /** Changes an element in place, logged for rollback. */
  setElement(set: FakeSet, key: string, elem: Element | undefined): void;
  /** Marks an object as made by this draft (it may change it without copying). */
  own(o: object): void;
}

/**
 * A transaction in progress: a copy of the table that operations change. Chains and sets are
 * copied on first change; element maps are too big to copy for every small transaction, so they
 * are changed in place with an undo log that {@link rollback} replays.
 */
export class Draft implements DraftAccess {
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

  requireTable(): FakeTable {
    if (!this.table) fail("ENOENT", "table does not exist");
    return this.table;
  }

  handle(): number {
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

  mutableSet(name: string): FakeSet | undefined {
    const t = this.requireTable();
    const s = t.sets.get(name);
    if (!s || this.owned.has(s)) return s;
    const copy = { ...s };
    this.owned.add(copy);
    t.sets.set(name, copy);
    return copy;
  }

  own(o: object): void {
    this.owned.add(o);
  }

  setElement(set: FakeSet, key: string, elem: Element | undefined): void {
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
        return setOp(this, verb, o);
      case "element":
        return elementOp(this, verb, o);
      case "counter":
        return counterOp(this, verb, o);
      case "flowtable":
        return flowtableOp(this, verb, o);
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
}
