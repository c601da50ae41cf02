/**
 * Progress of a long operation (gc over networks, list --check, migrate, restore): on a terminal
 * one line redrawn in place (done/total, rate, the item being worked on) and a summary at the
 * end; with --json one JSON event per line (start, done per item, summary) for tools; nothing at
 * all otherwise, so a pipe or a log gets only the command's own output. Events go to stderr: stdout
 * keeps the command's result.
 *
 *   const p = createProgress({ label: "migrate", total: items.length, json: values.json === true });
 *   for (const it of items) { p.begin(it.name); ...; p.end(it.name, ok, why); }
 *   p.finish();
 */

export type ProgressMode = "tty" | "json" | "none";

export interface ProgressStream {
  isTTY?: boolean;
  write(s: string): unknown;
}

export interface ProgressOptions {
  /** What is being done, e.g. `gc`, `check`, `migrate`. */
  label: string;
  total: number;
  /** --json given: stream JSON events. */
  json?: boolean;
  /** Where progress goes; default process.stderr. */
  stream?: ProgressStream;
  /** Clock in milliseconds; injectable for tests. */
  now?: () => number;
}

export interface ProgressSummary {
  label: string;
  total: number;
  done: number;
  failed: number;
  seconds: number;
  /** Items per second over the whole run. */
  rate: number;
  failures: { item: string; error: string }[];
}

export function progressMode(json: boolean, stream: ProgressStream): ProgressMode {
  if (json) return "json";
  return stream.isTTY === true ? "tty" : "none";
}

export interface Progress {
  readonly mode: ProgressMode;
  /** An item starts (the terminal line shows it). */
  begin(item: string): void;
  /** An item ends; `error` when it failed. */
  end(item: string, error?: string): void;
  /** Clears the line, prints the summary (terminal) or the summary event (JSON); returns it. */
  finish(): ProgressSummary;
}

const fmtRate = (r: number): string => (r >= 10 ? r.toFixed(0) : r.toFixed(1));

export function createProgress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  const now = opts.now ?? (() => performance.now());
  const mode = progressMode(opts.json === true, stream);
  const started = now();
  let done = 0;
  const failures: { item: string; error: string }[] = [];
  const elapsed = (): number => (now() - started) / 1000;
  const rate = (): number => (elapsed() > 0 ? done / elapsed() : 0);
  const emit = (event: Record<string, unknown>): void => {
    stream.write(JSON.stringify({ event: event.event, label: opts.label, ...event }) + "\n");
  };
  const draw = (item: string): void => {
    const width = String(opts.total).length;
    const line = `${opts.label} ${String(done).padStart(width)}/${opts.total}  ${fmtRate(rate())}/s  ${item}`;
    stream.write(`\r\x1b[2K${line.slice(0, 100)}`);
  };
  if (mode === "json") emit({ event: "start", total: opts.total });
  return {
    mode,
    begin(item) {
      if (mode === "tty") draw(item);
      else if (mode === "json") emit({ event: "begin", item, done, total: opts.total });
    },
    end(item, error) {
      done++;
      if (error !== undefined) failures.push({ item, error });
      if (mode === "tty") draw(item);
      else if (mode === "json")
        emit({
          event: "end",
          item,
          done,
          total: opts.total,
          ok: error === undefined,
          ...(error ? { error } : {}),
        });
    },
    finish() {
      const seconds = elapsed();
      const summary: ProgressSummary = {
        label: opts.label,
        total: opts.total,
        done,
        failed: failures.length,
        seconds: Math.round(seconds * 1000) / 1000,
        rate: Math.round(rate() * 10) / 10,
        failures,
      };
      if (mode === "tty")
        stream.write(
          `\r\x1b[2K${opts.label}: ${done}/${opts.total} done in ${seconds.toFixed(1)} s (${fmtRate(rate())}/s)` +
            `${failures.length ? `, ${failures.length} failed` : ""}\n`,
        );
      else if (mode === "json") emit({ event: "summary", ...summary });
      return summary;
    },
  };
}
