/**
 * iptables through iptables-save and iptables-restore: one process reads a table, one applies a
 * whole change atomically (`--noflush` keeps everything not named). `-w` waits for the xtables
 * lock instead of failing when another program holds it. Works with iptables-nft and -legacy.
 * Backends take an {@link IptablesRunner}; plugin mains give them {@link systemIptables}, tests
 * the fake in `./fake.ts`.
 */
import { accessSync, constants } from "node:fs";
import { classifyMessage } from "../process/errors.js";
import { systemRunner, type Runner } from "../process/runner.js";
import { SystemKernelTables, type KernelTables } from "./tables.js";
import { ambientEnv } from "../cni/ambient.js";

export type IpFamily = 4 | 6;

export class IptablesError extends Error {
  override readonly name = "IptablesError";
}

/** The rules of one table as iptables-save prints them (`-A CHAIN ...` lines) and its chains. */
export interface SavedTable {
  chains: Set<string>;
  rules: string[];
}

/** What the backends do with iptables. */
export interface IptablesRunner {
  /** Whether this family's iptables-restore is installed (checked without a process). */
  available(family: IpFamily): boolean;
  save(family: IpFamily, table: string): Promise<SavedTable>;
  /** Applies `lines` (without the `*table` and COMMIT lines) to one table atomically. */
  restore(family: IpFamily, table: string, lines: readonly string[]): Promise<void>;
  /** `iptables -N`: creates a chain, and leaves an existing one (and its rules) alone. */
  newChain(family: IpFamily, table: string, chain: string): Promise<void>;
  /**
   * `iptables -S CHAIN`: one chain's rules (`-A` lines as iptables-save prints them), undefined
   * when it cannot be listed (no such chain). iptables-nft loads only that chain, so a small
   * chain lists in a few ms whatever the rest of the table holds.
   */
  listChain(family: IpFamily, table: string, chain: string): Promise<string[] | undefined>;
}

export function tool(family: IpFamily, what: "save" | "restore" | ""): string {
  const base = family === 4 ? "iptables" : "ip6tables";
  return what ? `${base}-${what}` : base;
}

/** The built-in chains of each table: what iptables-save prints for a table the kernel lacks. */
export const BUILTIN_CHAINS: Readonly<Record<string, readonly string[]>> = {
  filter: ["INPUT", "FORWARD", "OUTPUT"],
  nat: ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
  mangle: ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
  raw: ["PREROUTING", "OUTPUT"],
};

/** Splits iptables-save output into chains and `-A` rules. */
export function parseSave(text: string): SavedTable {
  const chains = new Set<string>();
  const rules: string[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith(":")) chains.add(line.slice(1).split(" ")[0]!);
    else if (line.startsWith("-A ")) rules.push(line);
  }
  return { chains, rules };
}

/** The input of one iptables-restore run; refuses lines that would end a command early. */
export function restoreInput(table: string, lines: readonly string[]): string {
  for (const l of lines)
    if (/[\n\r\0]/.test(l)) throw new IptablesError(`refusing iptables line with a line break`);
  return `*${table}\n${lines.join("\n")}\nCOMMIT\n`;
}

/** The host's iptables, through a process runner. */
export class SystemIptables implements IptablesRunner {
  constructor(
    private readonly runner: Runner = systemRunner,
    private readonly tables: KernelTables = new SystemKernelTables({ runner }),
  ) {}

  available(family: IpFamily): boolean {
    return onPath(tool(family, "restore"));
  }

  async save(family: IpFamily, table: string): Promise<SavedTable> {
    // A table the kernel lacks reads as iptables-save prints it (its built-in chains), no process.
    if (BUILTIN_CHAINS[table] && !(await this.tables.mayHold(family, table)))
      return { chains: new Set(BUILTIN_CHAINS[table]), rules: [] };
    const res = await this.runner.run({ argv: [tool(family, "save"), "-t", table] }).catch((e: Error) => {
      throw new IptablesError(`could not run ${tool(family, "save")}: ${e.message}`, { cause: e });
    });
    if (res.code !== 0) throw new IptablesError(`${tool(family, "save")} -t ${table}: ${res.stderr.trim()}`);
    return parseSave(res.stdout);
  }

  async restore(family: IpFamily, table: string, lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    const input = restoreInput(table, lines);
    const argv = [tool(family, "restore"), "-w", "--noflush"];
    this.tables.changed();
    const res = await this.runner
      .run({ argv, stdin: input })
      .catch((e: Error) => {
        throw new IptablesError(`could not run ${tool(family, "restore")}: ${e.message}`, { cause: e });
      })
      .finally(() => this.tables.changed());
    if (res.code !== 0)
      throw new IptablesError(`${tool(family, "restore")}: ${res.stderr.trim().replace(/\s+/g, " ")}`);
  }

  async listChain(family: IpFamily, table: string, chain: string): Promise<string[] | undefined> {
    const argv = [tool(family, ""), "-w", "-t", table, "-S", chain];
    const r = await this.runner.run({ argv }).catch((e: Error) => {
      throw new IptablesError(`could not run ${tool(family, "")}: ${e.message}`, { cause: e });
    });
    return r.code === 0 ? r.stdout.split("\n").filter((l) => l.startsWith("-A ")) : undefined;
  }

  async newChain(family: IpFamily, table: string, chain: string): Promise<void> {
    const argv = [tool(family, ""), "-w", "-t", table, "-N", chain];
    this.tables.changed();
    const r = await this.runner.run({ argv }).catch((e: Error) => {
      throw new IptablesError(`could not run ${tool(family, "")}: ${e.message}`, { cause: e });
    });
    if (r.code !== 0 && classifyMessage(r.stderr) !== "exists")
      throw new IptablesError(`${tool(family, "")} -N ${chain}: ${r.stderr.trim()}`);
  }
}

export const systemIptables: IptablesRunner = new SystemIptables();

/** Quotes a comment for restore input; comments we write hold no backslash or newline. */
export function quoteArg(s: string): string {
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/** Whether an executable is on PATH, checked without starting a process. */
export function onPath(cmd: string): boolean {
  for (const dir of (ambientEnv()["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
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

/** `-A CHAIN spec` (or `-I CHAIN 1 spec`) -> `-C CHAIN spec`: in restore input, a line that fails the batch when the rule is missing. */
export function checkLine(line: string): string {
  return line.replace(/^-[AI] (\S+)(?: 1(?= ))?/, "-C $1");
}

/**
 * Whether `rule` (an `-A CHAIN spec` line) is in its chain, by listing that chain alone: the
 * cheap sign that a table was not flushed since the shared rules were written (a `-C` in a batch
 * makes iptables-nft load every rule of the table).
 */
export async function hasRule(
  ipt: IptablesRunner,
  family: IpFamily,
  table: string,
  rule: string,
): Promise<boolean> {
  const chain = /^-A (\S+) /.exec(rule)?.[1];
  return chain !== undefined && ((await ipt.listChain(family, table, chain)) ?? []).includes(rule);
}

/**
 * Applies `fast`, a batch written from what this process knows (a record of what its ADD wrote,
 * `-C` of the shared rules it relies on, `-N` of a chain that must be new) without reading the
 * table; iptables-restore applies all of it or nothing, so when the host is not as believed the
 * batch fails whole and `fallback`, the read-and-compute path, does the change instead.
 * True when the fast batch did it.
 */
export async function restoreOrFallback(
  ipt: IptablesRunner,
  family: IpFamily,
  table: string,
  fast: readonly string[] | undefined,
  fallback: () => Promise<void>,
): Promise<boolean> {
  if (fast?.length)
    try {
      await ipt.restore(family, table, fast);
      return true;
    } catch (e) {
      if (!(e instanceof IptablesError)) throw e;
    }
  await fallback();
  return false;
}

/**
 * The lines an attachment's record keeps under `key` for `family` (`{ chain, [key]: { "4": [...] } }`),
 * when the record is of `chain` and every line starts with `prefix` and jumps to `chain`: a record
 * is a file, so a torn or foreign one gives none (and the caller reads the table instead).
 */
export function recordedLines(
  data: unknown,
  chain: string,
  key: string,
  family: IpFamily,
  prefix: string,
): string[] | undefined {
  const r = data as Record<string, unknown> | undefined;
  if (r?.["chain"] !== chain) return undefined;
  const lines = (r[key] as Record<string, unknown> | undefined)?.[String(family)];
  if (!Array.isArray(lines) || lines.length === 0) return undefined;
  const ok = lines.every((l) => typeof l === "string" && l.startsWith(prefix) && l.endsWith(` -j ${chain}`));
  return ok ? (lines as string[]) : undefined;
}

/** `-A CHAIN spec` -> `-I CHAIN 1 spec`. */
export function insertFirst(saved: string): string {
  return saved.replace(/^-A (\S+)/, "-I $1 1");
}
