/**
 * The two listings that run to tens of thousands of entries, read straight from nft's JSON text
 * instead of through `JSON.parse` and a walk of its tree: a set's or map's elements, and a
 * chain's rules (of which the library keeps handle and comment, never the expression tree).
 * Measured on 50,000 map elements, the tree alone was most of the library's time (bench/nftables.ts:
 * allocating and collecting it, then allocating the elements again); here only the strings the
 * result keeps are allocated.
 *
 * Only the shapes nft 1.0.x prints for what the library writes are read; anything else (an escape
 * in a string, an unknown key, a number with a fraction) returns undefined and the caller takes
 * the general path in json.ts, which gives the same result (test/unit/nftables-json-fast.test.ts).
 */
import type { Element, Rule } from "./types.js";

class Unsupported extends Error {}
const unsupported = (): never => {
  throw new Unsupported();
};

const NO_PARTS: string[] = [];
const BARE_WORD = /^[A-Za-z0-9_.:/*-]+$/;
const VERDICTS = new Set(["accept", "drop", "continue", "return"]);
/** Port numbers and small integers repeat across elements: one string each. */
const NUMBER_TEXT: Array<string | undefined> = new Array<string | undefined>(65536).fill(undefined);

/**
 * A copy as an array literal of its exact length. An array grown by push from empty gets room for
 * 17 entries and a slice() is not much better: for 50,000 elements with two such arrays each,
 * that was most of the library's listing time (allocation and the GC after it, measured 32 ms
 * against 3 ms for literals).
 */
export function exactCopy(a: readonly string[]): string[] {
  switch (a.length) {
    case 1:
      return [a[0]!];
    case 2:
      return [a[0]!, a[1]!];
    case 3:
      return [a[0]!, a[1]!, a[2]!];
    case 4:
      return [a[0]!, a[1]!, a[2]!, a[3]!];
    default:
      return a.slice();
  }
}

class Scanner {
  pos: number;
  constructor(
    readonly s: string,
    pos: number,
  ) {
    this.pos = pos;
  }

  ws(): void {
    let c = this.s.charCodeAt(this.pos);
    while (c === 32 || c === 10 || c === 13 || c === 9) c = this.s.charCodeAt(++this.pos);
  }

  peek(): number {
    this.ws();
    return this.s.charCodeAt(this.pos);
  }

  expect(ch: string): void {
    if (this.peek() !== ch.charCodeAt(0)) unsupported();
    this.pos++;
  }

  /** `,` then true, or the closing `close` then false. */
  more(close: string): boolean {
    const c = this.peek();
    this.pos++;
    if (c === 44) return true;
    if (c !== close.charCodeAt(0)) unsupported();
    return false;
  }

  string(): string {
    this.expect('"');
    const end = this.s.indexOf('"', this.pos);
    if (end < 0) unsupported();
    const v = this.s.slice(this.pos, end);
    if (v.includes("\\")) unsupported();
    this.pos = end + 1;
    return v;
  }

  number(): string {
    this.ws();
    const start = this.pos;
    let c = this.s.charCodeAt(this.pos);
    let n = 0;
    while (c >= 48 && c <= 57) {
      n = n * 10 + (c - 48);
      c = this.s.charCodeAt(++this.pos);
    }
    if (this.pos === start || c === 46 || c === 101 || c === 69) unsupported();
    if (n < 65536) return (NUMBER_TEXT[n] ??= String(n));
    return this.s.slice(start, this.pos);
  }

  /** Whether `text` (a quoted key and its colon) is next; if so, past it. No string is made. */
  lit(text: string): boolean {
    this.ws();
    if (!this.s.startsWith(text, this.pos)) return false;
    this.pos += text.length;
    return true;
  }

  key(): string {
    const k = this.string();
    this.expect(":");
    return k;
  }

  /** One key or value as the library's text parts, appended to `out` (see json.ts valueText). */
  parts(out: string[]): void {
    const c = this.peek();
    if (c === 34) {
      const v = this.string();
      out.push(BARE_WORD.test(v) ? v : `"${v}"`);
    } else if (c >= 48 && c <= 57) out.push(this.number());
    else if (c === 123) {
      this.pos++;
      if (this.lit('"concat":')) {
        this.expect("[");
        do this.parts(out);
        while (this.more("]"));
      } else out.push(this.compound(this.key()));
      this.expect("}");
    } else unsupported();
  }

  /** The inside of `{k: …}` that is not a concatenation: prefix, range or verdict. */
  private compound(k: string): string {
    if (k === "prefix") {
      this.expect("{");
      let addr = "";
      let len = "";
      do {
        const f = this.key();
        if (f === "addr") addr = this.one();
        else if (f === "len") len = this.number();
        else unsupported();
      } while (this.more("}"));
      return `${addr}/${len}`;
    }
    if (k === "range") {
      this.expect("[");
      const a = this.one();
      this.expect(",");
      const b = this.one();
      this.expect("]");
      return `${a}-${b}`;
    }
    if (VERDICTS.has(k)) {
      this.ws();
      if (!this.s.startsWith("null", this.pos)) unsupported();
      this.pos += 4;
      return k;
    }
    if (k === "jump" || k === "goto") {
      this.expect("{");
      if (this.key() !== "target") unsupported();
      const t = this.string();
      this.expect("}");
      return `${k} ${t}`;
    }
    return unsupported();
  }

  private one(): string {
    const out: string[] = [];
    this.parts(out);
    if (out.length !== 1) unsupported();
    return out[0]!;
  }

  /** A key, bare or in its `{"elem": {"val": …, …}}` wrapper, with the wrapper's fields on `e`. */
  keyOf(e: Element): void {
    if (this.peek() === 123 && this.s.startsWith('{"elem":', this.pos)) {
      this.pos += 8;
      this.expect("{");
      do {
        if (this.lit('"val":')) {
          e.key = this.list();
          continue;
        }
        if (this.lit('"comment":')) {
          e.comment = this.string();
          continue;
        }
        const f = this.key();
        if (f === "timeout") e.timeout = Number(this.number());
        else if (f === "expires") this.number();
        else if (f === "comment") e.comment = this.string();
        else if (f === "counter") {
          this.expect("{");
          e.counter = true;
          do {
            const g = this.key();
            if (g === "packets") e.packets = Number(this.number());
            else if (g === "bytes") e.bytes = Number(this.number());
            else unsupported();
          } while (this.more("}"));
          e.packets ??= 0;
          e.bytes ??= 0;
        } else unsupported();
      } while (this.more("}"));
      this.expect("}");
    } else e.key = this.list();
  }

  private readonly scratch: string[] = [];
  list(): string[] {
    this.scratch.length = 0;
    this.parts(this.scratch);
    return exactCopy(this.scratch);
  }
}

/**
 * The elements of the one set or map `nft --json list set|map` printed, or undefined when the
 * text has a shape this reader leaves to the general path (also when it lists no elements).
 */
export function fastElements(stdout: string, kind: "set" | "map", name: string): Element[] | undefined {
  const at = stdout.indexOf('"elem": [');
  if (at < 0 || stdout.indexOf('"elem": [', at + 1) >= 0) return undefined;
  const sc = new Scanner(stdout, at + 9);
  const out: Element[] = [];
  try {
    if (sc.peek() === 93) return [];
    do {
      const e: Element =
        kind === "set"
          ? { kind: "element", set: name, key: NO_PARTS }
          : { kind: "element", map: name, key: NO_PARTS, value: NO_PARTS };
      if (kind === "map") {
        sc.expect("[");
        sc.keyOf(e);
        sc.expect(",");
        e.value = sc.list();
        sc.expect("]");
      } else sc.keyOf(e);
      out.push(e);
    } while (sc.more("]"));
  } catch (e) {
    if (e instanceof Unsupported) return undefined;
    throw e;
  }
  return out;
}

const RULE_HEAD =
  /\{"rule": \{"family": "[^"]*", "table": "[^"]*", "chain": "([^"\\]*)", "handle": (\d+)(?:, "comment": "([^"\\]*)")?, "expr": /y;

/**
 * The rules (chain, handle, comment) of `nft --json list chain|table`, found by their header
 * without reading the expressions, or undefined when a header has another shape. A comment or
 * string cannot hold `{"rule": {`: nft escapes the quotes inside strings.
 */
export function fastRules(stdout: string): Rule[] | undefined {
  const out: Rule[] = [];
  for (let at = stdout.indexOf('{"rule": {'); at >= 0; at = stdout.indexOf('{"rule": {', at + 10)) {
    RULE_HEAD.lastIndex = at;
    const m = RULE_HEAD.exec(stdout);
    if (!m) return undefined;
    const r: Rule = { kind: "rule", chain: m[1]!, rule: "", handle: Number(m[2]) };
    if (m[3] !== undefined) r.comment = m[3];
    out.push(r);
  }
  return out;
}
