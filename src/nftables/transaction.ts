/**
 * A transaction: operations collected in order, applied by nft as one atomic batch. Invalid
 * operations are recorded, not thrown, so call sites can chain; the first one fails the whole
 * transaction before nft runs.
 */
import { NftError } from "./errors.js";
import {
  elementCommandText,
  renderElements,
  renderOperation,
  validateObject,
  type Scope,
} from "./objects.js";
import type { Element, Features, NftObject, Operation, Rule, Verb } from "./types.js";

/** Elements per `add element` command: big enough to amortise parsing, small enough for error columns. */
const ELEMENTS_PER_COMMAND = 1000;

/** The text of a transaction and, per line, which operations produced it. */
/** The operations of one rendered line, with each one's column span on that line. */
export type LineSpans =
  | Array<{ op: number; from: number; to: number }>
  /** A batch of elements: operation `first` + k is `parts[k]`, the first part at column `col`. */
  | { first: number; col: number; parts: readonly string[] };

export interface RenderedTransaction {
  text: string;
  /** lines[i]: the operations of line i+1. */
  lines: LineSpans[];
}

export class Transaction {
  private readonly ops: Operation[] = [];
  private firstError: { index: number; error: NftError } | undefined;

  constructor(readonly scope: Scope) {}

  get operations(): readonly Operation[] {
    return this.ops;
  }
  get size(): number {
    return this.ops.length;
  }
  /** The first invalid operation, if any. */
  get error(): NftError | undefined {
    return this.firstError?.error;
  }

  private push(verb: Verb, object: NftObject): this {
    const index = this.ops.length;
    const op = { verb, object: structuredCloneObject(object) };
    this.ops.push(op);
    if (!this.firstError) {
      try {
        validateObject(verb, op.object);
      } catch (e) {
        const err = e instanceof NftError ? e : new NftError("EINVAL", String(e));
        this.firstError = {
          index,
          error: new NftError(
            err.code,
            `operation ${index + 1} (${verb} ${object.kind}): ${err.message}`,
            op,
            index,
          ),
        };
        if ("field" in err) Object.assign(this.firstError.error, { field: err.field });
      }
    }
    return this;
  }

  /** Creates the object if missing; no error if it exists (for elements: with the same value). */
  add(obj: NftObject): this {
    return this.push("add", obj);
  }
  /** Creates the object; fails with EEXIST if it exists. */
  create(obj: Exclude<NftObject, Rule>): this {
    return this.push("create", obj);
  }
  /** Inserts a rule at the start of its chain, or before the given index/handle. */
  insert(rule: Rule): this {
    return this.push("insert", rule);
  }
  /** Replaces the rule with the given handle. */
  replace(rule: Rule): this {
    return this.push("replace", rule);
  }
  /** Deletes the object; fails with ENOENT if it does not exist. */
  delete(obj: NftObject): this {
    return this.push("delete", obj);
  }
  /** Deletes the object if it exists (emulated with add + delete where nft lacks destroy). */
  destroy(obj: NftObject): this {
    return this.push("destroy", obj);
  }
  /** Empties a table (its rules: chains, sets and elements stay, as in nft), a chain, a set or a map. */
  flush(obj: NftObject): this {
    return this.push("flush", obj);
  }
  /** Zeroes a named counter. */
  reset(obj: NftObject): this {
    return this.push("reset", obj);
  }

  /** Throws the first validation error, also re-checking verbs that depend on nft's features. */
  validate(features?: Features): void {
    if (this.firstError) throw this.firstError.error;
    if (!features) return;
    this.ops.forEach((op, index) => {
      try {
        validateObject(op.verb, op.object, features);
      } catch (e) {
        const err = e instanceof NftError ? e : new NftError("EINVAL", String(e));
        throw new NftError(
          err.code,
          `operation ${index + 1} (${op.verb} ${op.object.kind}): ${err.message}`,
          op,
          index,
        );
      }
    });
  }

  /** True if rendering depends on whether nft has destroy. */
  get usesDestroy(): boolean {
    return this.ops.some((op) => op.verb === "destroy");
  }

  render(features?: Features): RenderedTransaction {
    this.validate(features);
    const out: string[] = [];
    const lines: RenderedTransaction["lines"] = [];
    const emit = (
      cmds: string[],
      spans: (cmd: string) => Array<{ op: number; from: number; to: number }>,
    ): void => {
      for (const cmd of cmds) {
        out.push(cmd);
        lines.push(spans(cmd));
      }
    };
    for (let i = 0; i < this.ops.length;) {
      const op = this.ops[i]!;
      if (op.object.kind !== "element") {
        emit(renderOperation(this.scope, op.verb, op.object, features), (cmd) => [
          { op: i, from: 1, to: cmd.length },
        ]);
        i++;
        continue;
      }
      // Batch consecutive element operations on the same set/map with the same verb.
      const first = op.object;
      let j = i;
      while (j < this.ops.length && j - i < ELEMENTS_PER_COMMAND) {
        const o = this.ops[j]!;
        if (o.verb !== op.verb || o.object.kind !== "element" || !sameTarget(o.object, first)) break;
        j++;
      }
      const batch = this.ops.slice(i, j).map((o) => o.object as Element);
      // Spans of a batch are worked out only when nft reports an error in it: batches run to
      // 100,000s of elements and a span object each was most of render()'s time.
      for (const cmd of renderElements(this.scope, op.verb, batch, features)) {
        out.push(elementCommandText(cmd));
        lines.push({ first: i, col: cmd.head.length + 4, parts: cmd.parts });
      }
      i = j;
    }
    return { text: out.join("\n") + "\n", lines };
  }

  /** The operation(s) nft's error position points at. */
  operationAt(rendered: RenderedTransaction, line: number, column: number): number | undefined {
    const spans = rendered.lines[line - 1];
    if (!spans) return undefined;
    if (!Array.isArray(spans)) {
      let col = spans.col;
      for (let k = 0; k < spans.parts.length; k++) {
        const to = col + spans.parts[k]!.length - 1;
        if (column >= col && column <= to) return spans.first + k;
        col = to + 3;
      }
      return spans.first;
    }
    if (spans.length === 0) return undefined;
    return (spans.find((s) => column >= s.from && column <= s.to) ?? spans[0])!.op;
  }
}

function sameTarget(a: Element, b: Element): boolean {
  return a.set === b.set && a.map === b.map;
}

/** Operations keep a copy so later changes by the caller do not alter a queued transaction. */
function structuredCloneObject<T extends NftObject>(obj: T): T {
  const copy = { ...obj };
  // By kind, so each check stays monomorphic on hot paths (100,000s of elements).
  switch (copy.kind) {
    case "element":
      if (Array.isArray(copy.key)) copy.key = copy.key.slice();
      if (Array.isArray(copy.value)) copy.value = copy.value.slice();
      break;
    case "set":
    case "map":
      if (Array.isArray(copy.flags)) copy.flags = copy.flags.slice();
      break;
    case "flowtable":
      if (Array.isArray(copy.devices)) copy.devices = copy.devices.slice();
      break;
  }
  return copy;
}
