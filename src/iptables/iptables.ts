/**
 * iptables through iptables-save and iptables-restore: one process reads a table, one applies a
 * whole change atomically (`--noflush` keeps everything not named). `-w` waits for the xtables
 * lock instead of failing when another program holds it. Works with iptables-nft and -legacy.
 */
import { accessSync, constants } from "node:fs";
import { systemRunner, type Runner } from "../process/runner.js";

export type IpFamily = 4 | 6;

export class IptablesError extends Error {
  override readonly name = "IptablesError";
}

function tool(family: IpFamily, what: "save" | "restore" | ""): string {
  const base = family === 4 ? "iptables" : "ip6tables";
  return what ? `${base}-${what}` : base;
}

/** The rules of one table as iptables-save prints them (`-A CHAIN ...` lines) and its chains. */
export interface SavedTable {
  chains: Set<string>;
  rules: string[];
}

export async function saveTable(
  family: IpFamily,
  table: string,
  runner: Runner = systemRunner,
): Promise<SavedTable> {
  const res = await runner.run({ argv: [tool(family, "save"), "-t", table] }).catch((e: Error) => {
    throw new IptablesError(`could not run ${tool(family, "save")}: ${e.message}`, { cause: e });
  });
  if (res.code !== 0) throw new IptablesError(`${tool(family, "save")} -t ${table}: ${res.stderr.trim()}`);
  const chains = new Set<string>();
  const rules: string[] = [];
  for (const line of res.stdout.split("\n")) {
    if (line.startsWith(":")) chains.add(line.slice(1).split(" ")[0]!);
    else if (line.startsWith("-A ")) rules.push(line);
  }
  return { chains, rules };
}

/** Applies `lines` (without the `*table` and COMMIT lines) to one table atomically. */
export async function restoreTable(
  family: IpFamily,
  table: string,
  lines: string[],
  runner: Runner = systemRunner,
): Promise<void> {
  if (lines.length === 0) return;
  for (const l of lines)
    if (/[\n\r\0]/.test(l)) throw new IptablesError(`refusing iptables line with a line break`);
  const input = `*${table}\n${lines.join("\n")}\nCOMMIT\n`;
  const argv = [tool(family, "restore"), "-w", "--noflush"];
  const res = await runner.run({ argv, stdin: input }).catch((e: Error) => {
    throw new IptablesError(`could not run ${tool(family, "restore")}: ${e.message}`, { cause: e });
  });
  if (res.code !== 0)
    throw new IptablesError(`${tool(family, "restore")}: ${res.stderr.trim().replace(/\s+/g, " ")}`);
}

/** Quotes a comment for restore input; comments we write hold no backslash or newline. */
export function quoteArg(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** Whether an executable is on PATH, checked without starting a process. */
export function onPath(cmd: string): boolean {
  for (const dir of (process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    try {
      accessSync(`${dir}/${cmd}`, constants.X_OK);
      return true;
    } catch {
      // next
    }
  }
  return false;
}

/** Rewrites a saved `-A CHAIN spec` rule into the `-D CHAIN spec` that deletes it. */
export function deleteLine(saved: string): string {
  return "-D " + saved.slice(3);
}
