/**
 * bench/chain.ts's figures: what the rounds collected per flavour, turned into the table's rows
 * (keys and their order are what docs/performance.md, bench/results/chain.json and
 * bench/charts/render.ts read), and the table printed with ratios against upstream 1.1.1.
 */
import { median } from "./chain-run.js";
import type { ChainTiming } from "./chain-measure.js";

export type Figures = Record<string, number | undefined>;

/** What a flavour's rounds gave. */
export interface Collected {
  version: number[];
  bridge: ChainTiming[];
  processes?: { add?: number; del?: number };
  memory?: { peak?: number; daemon?: number };
  /** Chain timings per population. */
  chains: Map<number, ChainTiming[]>;
  counts?: { served?: number; refused?: number };
}

export const collected = (): Collected => ({ version: [], bridge: [], chains: new Map() });

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Medians of the wall times; CPU as the mean over the runs (ticks are 10 ms: a median of per-run counts would be coarse). */
export function figuresOf(c: Collected, populations: readonly number[]): Figures {
  const figures: Figures = {};
  if (c.version.length) figures["VERSION ms"] = median(c.version);
  if (c.bridge.length) {
    figures["bridge ADD ms"] = median(c.bridge.map((t) => t.add));
    figures["bridge DEL ms"] = median(c.bridge.map((t) => t.del));
  }
  if (c.processes) {
    figures["processes per chain ADD"] = c.processes.add;
    figures["processes per chain DEL"] = c.processes.del;
  }
  if (c.memory) {
    figures["peak RSS bridge ADD MiB"] = c.memory.peak;
    if (c.memory.daemon !== undefined) figures["resident daemon RSS MiB"] = c.memory.daemon;
  }
  for (const n of populations) {
    const ts = c.chains.get(n);
    if (!ts?.length) continue;
    const at = n === 0 ? "" : `, ${n} attached`;
    const add = median(ts.map((t) => t.add));
    const del = median(ts.map((t) => t.del));
    figures[`chain ADD ms${at}`] = add;
    figures[`chain DEL ms${at}`] = del;
    figures[`chain ADD+DEL ms${at}`] = add + del;
    figures[`chain ADD CPU ms${at}`] = mean(ts.map((t) => t.addCpu));
    figures[`chain DEL CPU ms${at}`] = mean(ts.map((t) => t.delCpu));
  }
  if (c.counts) {
    figures["resident calls served"] = c.counts.served;
    figures["resident calls refused"] = c.counts.refused;
  }
  return figures;
}

export function printTable(saved: Array<{ flavour: string; figures: Figures }>): void {
  const keys = [...new Set(saved.flatMap((s) => Object.keys(s.figures)))];
  // Ratios only against upstream 1.1.1 (left out with --only, then no ratios).
  const base = saved[0]!.flavour.startsWith("upstream 1.1.1") ? saved[0]!.figures : {};
  const cell = (k: string, v: number | undefined, isBase: boolean): string => {
    if (v === undefined) return "n/a";
    if (k.startsWith("processes") || k.startsWith("resident calls")) return String(v);
    const b = base[k];
    const ratio = !isBase && b && !k.startsWith("peak") ? ` (${(v / b).toFixed(2)}x)` : "";
    return `${v.toFixed(1)}${ratio}`;
  };
  console.log(`${"flavour".padEnd(34)} ${saved.map((s) => s.flavour.padEnd(33)).join("")}`);
  for (const k of keys)
    console.log(`${k.padEnd(34)} ${saved.map((s, i) => cell(k, s.figures[k], i === 0).padEnd(33)).join("")}`);
  console.log("\nratios are against upstream 1.1.1 in the same run (below 1.00x: faster)");
}
