/**
 * A bench run's figures saved as JSON (`bench/results/<name>.json`, or under BENCH_RESULTS_DIR),
 * so charts are drawn from what a run measured (bench/charts/render.ts), not typed in.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const RESULTS_DIR =
  process.env["BENCH_RESULTS_DIR"] ?? fileURLToPath(new URL("../results", import.meta.url));

export interface SavedRun<T> {
  bench: string;
  /** ISO time of the run. */
  date: string;
  /** What the run was asked (runs, populations, ...). */
  params: Record<string, unknown>;
  figures: T;
}

export function saveResults<T>(bench: string, params: Record<string, unknown>, figures: T): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${bench}.json`);
  const run: SavedRun<T> = { bench, date: new Date().toISOString(), params, figures };
  writeFileSync(file, JSON.stringify(run, null, 2) + "\n");
  console.log(`figures saved to ${file} (charts: npm run charts)`);
  return file;
}
