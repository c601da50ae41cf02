/** Human output of the CLI: aligned columns, and colour only where a person reads it. */

export interface OutStream {
  isTTY?: boolean;
}

/** Colour on a terminal, never when piped, with NO_COLOR set (no-color.org) or TERM=dumb. */
export function useColour(stream: OutStream, env: Record<string, string | undefined>): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (env.TERM === "dumb") return false;
  return stream.isTTY === true;
}

const CODES = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1 } as const;
export type Colour = keyof typeof CODES;

export type Paint = (text: string, colour: Colour) => string;

export function painter(on: boolean): Paint {
  return on ? (t, c) => `\x1b[${CODES[c]}m${t}\x1b[0m` : (t) => t;
}

// eslint-disable-next-line no-control-regex
const visibleLength = (s: string): number => s.replace(/\x1b\[[0-9;]*m/g, "").length;

/** Rows of cells (already painted) into aligned columns; the last column is not padded. */
export function renderTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  paint: Paint,
): string {
  const all = [header.map((h) => paint(h, "bold")), ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => visibleLength(r[i] ?? ""))));
  return (
    all
      .map((r) =>
        r
          .map((cell, i) => (i === r.length - 1 ? cell : cell + " ".repeat(widths[i]! - visibleLength(cell))))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}
