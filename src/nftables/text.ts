/**
 * Reading nft's text: the canonical dump back into objects (the fake's load), and what nft
 * prints only as text (the elements `get element` returns, rule texts by handle, the parts of a
 * table listing nft 1.0.6 leaves out of its JSON).
 */
import { ValidationError } from "./errors.js";
import type {
  Chain,
  ChainHook,
  ChainPolicy,
  ChainType,
  Counter,
  Element,
  Family,
  Flowtable,
  NMap,
  NSet,
  NftObject,
  Rule,
  SetFlag,
  SetPolicy,
} from "./types.js";

/** Splits at a separator outside double quotes and braces. */
export function splitTop(text: string, sep: string): string[] {
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
export function parseElement(name: string, text: string): Element {
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
export function parseDumpLine(line: string, family: Family, table: string): NftObject[] {
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

/**
 * The elements `get element` printed (nft 1.0.6 prints them as text only), with key, value and
 * comment. nft lists a whole table block per set or map asked about; comments cannot hold a quote.
 */
export function parseGetElements(output: string): Element[] {
  const out: Element[] = [];
  let owner: { name: string } | undefined;
  let body: string | undefined;
  for (const line of output.split("\n")) {
    const head = /^\t(?:set|map) (\S+) \{$/.exec(line);
    if (head) owner = { name: head[1]! };
    else if (owner && body === undefined && /^\t\telements = \{ /.test(line)) body = line.trim();
    else if (body !== undefined) body += " " + line.trim();
    if (owner && body !== undefined && body.endsWith(" }")) {
      const inner = body.slice("elements = { ".length, -2);
      // A map's elements all have a value, a set's none: parseElement tells them apart so.
      for (const part of splitTop(inner, ", ")) out.push(parseElement(owner.name, part));
      body = undefined;
    }
  }
  return out;
}
