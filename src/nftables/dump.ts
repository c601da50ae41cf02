/**
 * Canonical text of one table: `add` commands in a fixed order (objects sorted by name, rules in
 * chain order, elements sorted by key), named priorities turned into numbers. The real
 * implementation and the fake both produce it, so their states can be compared as strings, and
 * the text can be fed back to nft or to the fake.
 */
import { chainSpec, elementText, flowtableSpec, setSpec, type Scope } from "./objects.js";
import type {
  Chain,
  Counter,
  Element,
  Family,
  Flowtable,
  NMap,
  NSet,
  Priority,
  Rule,
  SetFlag,
} from "./types.js";

export interface TableState {
  comment?: string;
  chains: Chain[];
  rules: Map<string, Rule[]>;
  sets: Array<NSet | NMap>;
  elements: Map<string, Element[]>;
  counters: Counter[];
  flowtables: Flowtable[];
}

const STANDARD_PRIORITIES: Record<string, number> = {
  raw: -300,
  mangle: -150,
  dstnat: -100,
  filter: 0,
  security: 50,
  srcnat: 100,
};
const BRIDGE_PRIORITIES: Record<string, number> = { dstnat: -300, filter: -200, out: 100, srcnat: 300 };

/** The number a named priority stands for in a family (as nft's documentation gives them). */
export function priorityValue(family: Family, priority: Priority | undefined): number {
  if (priority === undefined) return 0;
  if (typeof priority === "number") return priority;
  const m = /^(\w+)(?: ([+-]) (\d+))?$/.exec(priority);
  const base = (family === "bridge" ? BRIDGE_PRIORITIES : STANDARD_PRIORITIES)[m?.[1] ?? ""] ?? 0;
  const offset = m?.[3] ? Number(m[3]) * (m[2] === "-" ? -1 : 1) : 0;
  return base + offset;
}

/** Set flags in the order nft prints them, whatever order they were given in. */
const FLAG_ORDER = ["constant", "dynamic", "interval", "timeout"];
const canonicalFlags = (flags: SetFlag[]): SetFlag[] =>
  [...flags].sort((a, b) => FLAG_ORDER.indexOf(a) - FLAG_ORDER.indexOf(b));

const byName = <T extends { name: string }>(a: T, b: T): number =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

export function renderDump(scope: Scope, state: TableState): string {
  const where = `${scope.family} ${scope.table}`;
  const lines: string[] = [];
  lines.push(`add table ${where}${state.comment !== undefined ? ` { comment "${state.comment}" ; }` : ""}`);
  for (const c of [...state.counters].sort(byName))
    lines.push(
      `add counter ${where} ${c.name}${c.comment !== undefined ? ` { comment "${c.comment}" ; }` : ""}`,
    );
  for (const f of [...state.flowtables].sort(byName))
    lines.push(
      `add flowtable ${where} ${f.name}${flowtableSpec({ ...f, priority: priorityValue(scope.family, f.priority) })}`,
    );
  for (const c of [...state.chains].sort(byName)) {
    const canon: Chain = c.type ? { ...c, priority: priorityValue(scope.family, c.priority) } : c;
    lines.push(`add chain ${where} ${c.name}${chainSpec(canon)}`);
  }
  for (const s of [...state.sets].sort(byName))
    lines.push(
      `add ${s.kind} ${where} ${s.name}${setSpec(s.flags ? { ...s, flags: canonicalFlags(s.flags) } : s)}`,
    );
  for (const c of [...state.chains].sort(byName))
    for (const r of state.rules.get(c.name) ?? [])
      lines.push(
        `add rule ${where} ${c.name} ${r.rule}${r.comment !== undefined ? ` comment "${r.comment}"` : ""}`,
      );
  for (const s of [...state.sets].sort(byName)) {
    const elems = [...(state.elements.get(s.name) ?? [])]
      .map((e) => elementText({ ...e, counter: false }, true))
      .sort();
    if (elems.length) lines.push(`add element ${where} ${s.name} { ${elems.join(", ")} }`);
  }
  return lines.join("\n") + "\n";
}
