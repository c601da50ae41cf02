/** The fake's state of one table, and what its operations share (errno texts, keys, references). */
import type { NftErrorCode } from "./errors.js";
import type { Counter, Element, Flowtable, NMap, NSet, Chain } from "./types.js";

export interface FakeRule {
  handle: number;
  rule: string;
  comment?: string;
  /**
   * Deleted earlier in the running transaction. nft resolves rule positions against a cache that
   * still holds such rules, and the kernel accepts them as positions, so they count until commit.
   */
  deleted?: true;
}

export interface FakeChain {
  def: Chain;
  handle: number;
  rules: FakeRule[];
}

export interface FakeSet {
  def: NSet | NMap;
  handle: number;
  /** By key text (quotes stripped), in insertion order. */
  elements: Map<string, Element>;
}

export interface FakeTable {
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
export class OpFailure extends Error {
  constructor(
    readonly code: NftErrorCode,
    readonly reason: string,
  ) {
    super(reason);
  }
}

export const ERRNO_TEXT: Partial<Record<NftErrorCode, string>> = {
  ENOENT: "No such file or directory",
  EEXIST: "File exists",
  EBUSY: "Device or resource busy",
  EINVAL: "Invalid argument",
  ENOTSUP: "Operation not supported",
};

export function fail(code: NftErrorCode, reason: string): never {
  throw new OpFailure(code, reason);
}

/**
 * Strips quotes around a bare word, so `"eth0"` and `eth0` are one key and list as the kernel's
 * JSON gives them back; strings that need their quotes keep them, as the real listing does.
 */
export function unquote(part: string): string {
  const inner =
    part.length >= 2 && part.startsWith('"') && part.endsWith('"') ? part.slice(1, -1) : undefined;
  return inner !== undefined && /^[A-Za-z0-9_.:/*-]+$/.test(inner) ? inner : part;
}

export function keyOf(key: readonly string[]): string {
  return key.map(unquote).join(" . ");
}

export function copyElement(e: Element): Element {
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
/** `counter name <key> map @m`: the counter comes from an object map, the rule uses the map. */
const OBJECT_MAP_RE = new RegExp(String.raw`\bcounter name [^;"@]*? map @(${NAME})`, "g");

/** What a rule text refers to by name. */
interface References {
  chains: string[];
  sets: string[];
  counters: string[];
  flowtables: string[];
}

export function referencesOf(text: string): References {
  const refs: References = { chains: [], sets: [], counters: [], flowtables: [] };
  for (const m of text.replace(OBJECT_MAP_RE, "").matchAll(COUNTER_RE)) refs.counters.push(m[1]!);
  const bare = withoutStrings(text);
  for (const m of bare.matchAll(JUMP_RE)) refs.chains.push(m[1]!);
  for (const m of bare.matchAll(AT_RE)) (m[1] ? refs.flowtables : refs.sets).push(m[2]!);
  return refs;
}

/** The chain a map value jumps or goes to, if it is such a verdict. */
export function verdictTarget(value: readonly string[] | undefined): string | undefined {
  if (value?.length !== 1) return undefined;
  return /^(?:jump|goto) (\S+)$/.exec(value[0]!)?.[1];
}

export function sameStrings(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = [...(a ?? [])].sort();
  const y = [...(b ?? [])].sort();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Describes a rule or map element that jumps or goes to a chain, if there is one. */
export function chainUser(t: FakeTable, chain: string): string | undefined {
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
export function objectUser(
  t: FakeTable,
  kind: "sets" | "counters" | "flowtables",
  name: string,
): string | undefined {
  for (const c of t.chains.values())
    for (const r of c.rules)
      if (!r.deleted && referencesOf(r.rule)[kind].includes(name))
        return `rule ${r.handle} of chain ${c.def.name}`;
  if (kind === "counters")
    for (const s of t.sets.values()) {
      if (!isCounterMap(s.def)) continue;
      for (const e of s.elements.values())
        if (e.value?.[0] === name) return `element ${keyOf(e.key)} of map ${s.def.name}`;
    }
  return undefined;
}

/** A map whose values name counters (`type ... : counter`). */
export function isCounterMap(def: { kind: string; type?: string }): boolean {
  return def.kind === "map" && /:\s*counter$/.test(def.type ?? "");
}

/** Fails with ENOENT for a rule text that refers to something the table does not have. */
export function checkReferences(t: FakeTable, text: string): void {
  const refs = referencesOf(text);
  for (const name of refs.chains)
    if (!t.chains.has(name)) fail("ENOENT", `chain ${name} (jump or goto target) does not exist`);
  for (const name of refs.sets) if (!t.sets.has(name)) fail("ENOENT", `set or map @${name} does not exist`);
  for (const name of refs.counters)
    if (!t.counters.has(name)) fail("ENOENT", `counter ${name} does not exist`);
  for (const name of refs.flowtables)
    if (!t.flowtables.has(name)) fail("ENOENT", `flowtable @${name} does not exist`);
}
