/**
 * An in-memory iptables for tests without root: iptables-restore --noflush input is applied to
 * tables of chains and rule lines (atomically: a bad line changes nothing), iptables-save output
 * is served from them, and every restore input is recorded. Rules are kept as written, so a test
 * compares what a backend wrote, in the form iptables-save prints (the kernel suites prove that
 * the form is the one iptables-save prints back).
 */
import {
  BUILTIN_CHAINS,
  IptablesError,
  parseSave,
  restoreInput,
  type IpFamily,
  type IptablesRunner,
  type SavedTable,
} from "./iptables.js";

/** Chains of one table in creation order, each with its rules (the text after `-A CHAIN `). */
type Table = Map<string, string[]>;

export interface RecordedRestore {
  family: IpFamily;
  table: string;
  /** The whole input, `*table` to COMMIT. */
  input: string;
}

export class FakeIptables implements IptablesRunner {
  private readonly tables = new Map<string, Table>();
  /** Every restore input, in order. */
  readonly restores: RecordedRestore[] = [];
  /** Every table read (iptables-save), as `family table`, in order. */
  readonly saves: string[] = [];
  private readonly families: ReadonlySet<IpFamily>;

  constructor(opts: { families?: readonly IpFamily[] } = {}) {
    this.families = new Set(opts.families ?? [4, 6]);
  }

  available(family: IpFamily): boolean {
    return this.families.has(family);
  }

  /** A table's chains; one nobody wrote to yet has its built-in chains, and is not kept by a read. */
  private table(family: IpFamily, table: string, keep = false): Table {
    const key = `${family} ${table}`;
    let t = this.tables.get(key);
    if (!t) {
      t = new Map((BUILTIN_CHAINS[table] ?? []).map((c) => [c, []]));
      if (keep) this.tables.set(key, t);
    }
    return t;
  }

  private need(family: IpFamily): void {
    if (!this.available(family))
      throw new IptablesError(`fake: ip${family === 6 ? "6" : ""}tables is not installed`);
  }

  /** iptables-save's text of one table. */
  saveText(family: IpFamily, table: string): string {
    const t = this.table(family, table);
    const builtin = new Set(BUILTIN_CHAINS[table] ?? []);
    // As iptables-save: built-in chains first, then the others by name.
    const order = [...(BUILTIN_CHAINS[table] ?? []), ...[...t.keys()].filter((c) => !builtin.has(c)).sort()];
    const lines = [`*${table}`];
    for (const c of order) lines.push(`:${c} ${builtin.has(c) ? "ACCEPT" : "-"} [0:0]`);
    for (const c of order) for (const r of t.get(c)!) lines.push(`-A ${c} ${r}`);
    lines.push("COMMIT");
    return lines.join("\n") + "\n";
  }

  /** Serves this iptables-save text from now on (a scripted host state). */
  load(family: IpFamily, table: string, saveText: string): void {
    const t: Table = new Map((BUILTIN_CHAINS[table] ?? []).map((c) => [c, []]));
    for (const c of parseSave(saveText).chains) if (!t.has(c)) t.set(c, []);
    for (const r of parseSave(saveText).rules) {
      const [, chain, spec] = /^-A (\S+) (.*)$/.exec(r)!;
      t.get(chain!)?.push(spec!);
    }
    this.tables.set(`${family} ${table}`, t);
  }

  save(family: IpFamily, table: string): Promise<SavedTable> {
    return Promise.resolve().then(() => {
      this.need(family);
      this.saves.push(`${family} ${table}`);
      return parseSave(this.saveText(family, table));
    });
  }

  restore(family: IpFamily, table: string, lines: readonly string[]): Promise<void> {
    return Promise.resolve().then(() => {
      if (lines.length === 0) return;
      this.need(family);
      const input = restoreInput(table, lines);
      this.restores.push({ family, table, input });
      const draft: Table = new Map([...this.table(family, table)].map(([c, r]) => [c, [...r]]));
      lines.forEach((line, i) => {
        try {
          applyLine(draft, line, new Set(BUILTIN_CHAINS[table] ?? []));
        } catch (e) {
          throw new IptablesError(
            `fake ${family === 6 ? "ip6" : "ip"}tables-restore: line ${i + 2} failed: ${(e as Error).message}`,
          );
        }
      });
      this.tables.set(`${family} ${table}`, draft);
    });
  }

  /** Every chain listed (iptables -S), as `family table chain`, in order. */
  readonly listed: string[] = [];

  listChain(family: IpFamily, table: string, chain: string): Promise<string[] | undefined> {
    return Promise.resolve().then(() => {
      this.need(family);
      this.listed.push(`${family} ${table} ${chain}`);
      return this.table(family, table)
        .get(chain)
        ?.map((r) => `-A ${chain} ${r}`);
    });
  }

  newChain(family: IpFamily, table: string, chain: string): Promise<void> {
    return Promise.resolve().then(() => {
      this.need(family);
      const t = this.table(family, table, true);
      if (!t.has(chain)) t.set(chain, []);
    });
  }

  /** Every table's save text, family 4 first: what a test compares after a run. */
  saveAll(): string {
    return [...this.tables.keys()]
      .sort()
      .map((k) => {
        const [f, table] = k.split(" ");
        return `# ${f === "6" ? "ip6tables" : "iptables"}\n${this.saveText(Number(f) as IpFamily, table!)}`;
      })
      .join("");
  }
}

function applyLine(t: Table, line: string, builtin: ReadonlySet<string>): void {
  const declare = /^:(\S+) (\S+) \[\d+:\d+\]$/.exec(line);
  if (declare) {
    const chain = declare[1]!;
    // --noflush: declaring a user chain creates it or empties it; a built-in one keeps its rules.
    if (!builtin.has(chain)) t.set(chain, []);
    return;
  }
  const m = /^(-[AIDFXCN]) (\S+)(?: (.*))?$/.exec(line);
  if (!m) throw new Error(`cannot read ${JSON.stringify(line)}`);
  const [, op, chain, rest = ""] = m as unknown as [string, string, string, string | undefined];
  if (op === "-N") {
    // As iptables-restore: a chain that exists fails the batch.
    if (t.has(chain)) throw new Error(`chain ${chain} already exists`);
    t.set(chain, []);
    return;
  }
  const rules = t.get(chain);
  if (!rules) throw new Error(`chain ${chain} does not exist`);
  switch (op) {
    case "-A":
      rules.push(rest);
      return;
    case "-I": {
      const pos = /^(\d+) (.*)$/.exec(rest);
      rules.splice(pos ? Number(pos[1]) - 1 : 0, 0, pos ? pos[2]! : rest);
      return;
    }
    case "-C":
      if (!rules.includes(rest)) throw new Error(`no rule ${JSON.stringify(rest)} in chain ${chain}`);
      return;
    case "-D": {
      const i = rules.indexOf(rest);
      if (i < 0) throw new Error(`no rule ${JSON.stringify(rest)} in chain ${chain} to delete`);
      rules.splice(i, 1);
      return;
    }
    case "-F":
      rules.length = 0;
      return;
    case "-X": {
      if (builtin.has(chain)) throw new Error(`cannot delete built-in chain ${chain}`);
      if (rules.length) throw new Error(`chain ${chain} is not empty`);
      for (const [c, rs] of t)
        if (
          rs.some(
            (r) => r.endsWith(` -j ${chain}`) || r.includes(` -j ${chain} `) || r.endsWith(` -g ${chain}`),
          )
        )
          throw new Error(`chain ${chain} is referenced from ${c}`);
      t.delete(chain);
      return;
    }
  }
}
