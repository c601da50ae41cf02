/**
 * Random configs of the right and the wrong shape for property tests (fast-check): a valid base
 * config with one to three of its fields, at any depth, replaced by random JSON (nasty strings,
 * huge numbers, arrays where objects go and back), removed, or wrapped in an array.
 */
import fc from "fast-check";

type Json = unknown;

/** Every path (list of keys and indices) inside `x`, the root excluded. */
function paths(x: Json, prefix: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(x)) return x.flatMap((v, i) => [[...prefix, i], ...paths(v, [...prefix, i])]);
  if (x && typeof x === "object")
    return Object.entries(x).flatMap(([k, v]) => [[...prefix, k], ...paths(v, [...prefix, k])]);
  return [];
}

const nasty = fc.oneof(
  fc.constantFrom(
    "",
    " ",
    "; flush ruleset",
    '"',
    "\n",
    "../../etc",
    "10.0.0.1/33",
    "::",
    "0.0.0.0/0",
    "ff:ff:ff:ff:ff:ff",
    "INPUT",
    "a".repeat(300),
    2 ** 64,
    1e30,
    -1,
    0,
    0.5,
    Number.MAX_SAFE_INTEGER,
    null,
    true,
    [],
    {},
    [[]],
    [{}],
  ),
  fc.jsonValue({ maxDepth: 2 }),
);

export type Edit = { at: number; kind: "replace" | "delete" | "wrap"; value: Json };

export const edits: fc.Arbitrary<Edit[]> = fc.array(
  fc.record({ at: fc.nat(), kind: fc.constantFrom("replace", "delete", "wrap"), value: nasty }),
  { minLength: 1, maxLength: 3 },
);

/** `base` with `list` applied (each edit picks its path among the paths of the config it edits). */
export function applyEdits(base: Json, list: Edit[]): Json {
  let conf = structuredClone(base);
  for (const e of list) {
    const all = paths(conf);
    if (all.length === 0) return e.value;
    const path = all[e.at % all.length]!;
    const parent = path.slice(0, -1).reduce<Json>((o, k) => (o as Record<string | number, Json>)[k], conf) as
      Record<string | number, Json> | Json[];
    const key = path[path.length - 1]!;
    const obj = parent as Record<string | number, Json>;
    if (e.kind === "delete") {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete obj[key];
    } else obj[key] = e.kind === "wrap" ? [obj[key]] : e.value;
    conf = structuredClone(conf);
  }
  return conf;
}

/** JS runtime errors: what a parser that crashed (instead of refusing) would report. */
export const CRASH =
  /Cannot read prop|is not a function|is not iterable|undefined is not|Cannot convert|Maximum call stack|Invalid array length|toLowerCase|\bat .*\.(ts|js):\d+/;

/** The spec's error codes (and 999, internal). */
export const SPEC_CODES = new Set([1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 999]);
