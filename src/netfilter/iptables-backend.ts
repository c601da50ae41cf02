/**
 * The iptables backend: the owner's chains (`OWNER-CHAIN`, jumped to from the built-in chains)
 * changed with one `iptables-restore --noflush` per family, sets with `ipset restore`. The
 * kernel is read once with iptables-save and ipset save; then each apply sends only the rule
 * deletions and insertions (by position) of the chains that changed.
 */
import type { ApplyStats, Backend, Changes, DesiredFamily } from "./backend.js";
import { NetfilterError } from "./errors.js";
import { ipsetCreate, parseIpsetSave } from "./ipset.js";
import type { ManagedRule } from "./model.js";
import { iptablesChainName, ipsetName, markedComment, validateOwner } from "./naming.js";
import { diffRules } from "./rule-diff.js";
import { systemRunner, type Runner } from "../process/index.js";
import { quoteArg } from "./tokenize.js";
import {
  TABLE_NAMES,
  isBuiltin,
  type IpVersion,
  type SetType,
  type TableName,
  type TrafficCounters,
} from "./types.js";

export interface IptablesBackendOptions {
  owner: string;
  /** Network namespace (path or name under /run/netns). */
  netns?: string;
  /** Starts iptables-save, iptables-restore and ipset (tests pass a FakeRunner). */
  runner?: Runner;
}

interface KernelTable {
  /** The owner's chains by iptables name, with the marker key of each rule. */
  chains: Map<string, Array<string | undefined>>;
  /** Built-in chains that jump to the owner's chain. */
  jumps: Set<string>;
}
interface KernelSet {
  type: SetType | undefined;
  members: ReadonlySet<string>;
}

const tool = (f: IpVersion, what: "save" | "restore"): string =>
  `${f === 4 ? "iptables" : "ip6tables"}-${what}`;
const MARKER_IN_LINE = /--comment (?:"[^"]*?)?\bnfm:([0-9a-f]{12})\b/;

export class IptablesBackend implements Backend {
  readonly kind = "iptables";
  private readonly owner: string;
  private readonly runner: Runner;
  private readonly netns: string | undefined;
  private tables: Map<IpVersion, Map<TableName, KernelTable>> | undefined;
  private sets = new Map<string, KernelSet>();
  private processes = 0;

  constructor(opts: IptablesBackendOptions) {
    this.owner = validateOwner(opts.owner);
    this.runner = opts.runner ?? systemRunner;
    this.netns = opts.netns;
  }

  private async exec(argv: string[], stdin?: string): Promise<string> {
    this.processes++;
    let res;
    try {
      res = await this.runner.run({
        argv,
        ...(stdin !== undefined ? { stdin } : {}),
        ...(this.netns !== undefined ? { netns: this.netns } : {}),
      });
    } catch (e) {
      throw new NetfilterError("EAPPLY", `could not run ${argv[0]}: ${(e as Error).message}`, { cause: e });
    }
    if (res.code !== 0)
      throw new NetfilterError("EAPPLY", `${argv.join(" ")}: ${res.stderr.trim().replace(/\s+/g, " ")}`);
    return res.stdout;
  }

  async apply(desired: readonly DesiredFamily[], changes: Changes | undefined): Promise<ApplyStats> {
    this.processes = 0;
    const readState = this.tables === undefined;
    if (!this.tables) {
      await this.read(desired.map((d) => d.family));
      changes = undefined;
    }
    const stats: ApplyStats = { processes: 0, readState, chainsChanged: 0, setsChanged: 0 };
    const setsBefore: string[] = [];
    const setsAfter: string[] = [];
    const commits: Array<() => void> = [];
    for (const d of desired) this.planSets(d, changes, setsBefore, setsAfter, commits, stats);
    const restores = desired.map((d) => [d.family, this.planTables(d, changes, commits, stats)] as const);
    try {
      if (setsBefore.length) await this.exec(["ipset", "-exist", "restore"], setsBefore.join("\n") + "\n");
      for (const [family, text] of restores)
        if (text) await this.exec([tool(family, "restore"), "-w", "--noflush"], text);
      if (setsAfter.length) await this.exec(["ipset", "-exist", "restore"], setsAfter.join("\n") + "\n");
    } catch (e) {
      this.tables = undefined;
      throw e;
    }
    for (const c of commits) c();
    stats.processes = this.processes;
    return stats;
  }

  private planSets(
    d: DesiredFamily,
    changes: Changes | undefined,
    before: string[],
    after: string[],
    commits: Array<() => void>,
    stats: ApplyStats,
  ): void {
    const prefix = `${this.owner}-${d.family === 4 ? "v4" : "v6"}-`;
    const names = changes
      ? [...changes.sets]
          .filter((s) => s.startsWith(`${d.family}/`))
          .map((s) => ipsetName(this.owner, d.family, s.slice(2)))
      : [
          ...new Set([
            ...[...d.sets.keys()].map((s) => ipsetName(this.owner, d.family, s)),
            ...[...this.sets.keys()].filter((s) => s.startsWith(prefix)),
          ]),
        ];
    for (const name of names.sort()) {
      const want = d.sets.get(name.slice(prefix.length));
      const have = this.sets.get(name);
      if (want) {
        const lines: string[] = [];
        if (!have) lines.push(ipsetCreate(name, want.type, d.family));
        const old = have?.members ?? new Set<string>();
        for (const m of old) if (!want.members.has(m)) lines.push(`del ${name} ${m}`);
        for (const m of want.members) if (!old.has(m)) lines.push(`add ${name} ${m}`);
        if (lines.length === 0) continue;
        before.push(...lines);
        stats.setsChanged++;
        commits.push(() => this.sets.set(name, { type: want.type, members: want.members }));
      } else if (have) {
        after.push(`destroy ${name}`);
        stats.setsChanged++;
        commits.push(() => this.sets.delete(name));
      }
    }
  }

  /** iptables-restore input for one family, or "" when nothing changes. */
  private planTables(
    d: DesiredFamily,
    changes: Changes | undefined,
    commits: Array<() => void>,
    stats: ApplyStats,
  ): string {
    const kernel = this.tables!.get(d.family)!;
    let text = "";
    for (const table of TABLE_NAMES) {
      const kt = kernel.get(table)!;
      const chains = new Set<string>();
      if (changes) {
        for (const c of changes.chains)
          if (c.startsWith(`${d.family}/${table}/`)) chains.add(c.slice(`${d.family}/${table}/`.length));
      } else {
        for (const id of d.chains.keys())
          if (id.startsWith(`${table}/`)) chains.add(id.slice(table.length + 1));
        for (const name of kt.chains.keys()) chains.add(name.slice(this.owner.length + 1));
      }
      const decl: string[] = [];
      const ops: string[] = [];
      const jumps: string[] = [];
      const removals: string[] = [];
      for (const chain of [...chains].sort()) {
        const full = iptablesChainName(this.owner, chain);
        const want = d.chains.get(`${table}/${chain}`);
        const have = kt.chains.get(full);
        if (want?.policy)
          throw new NetfilterError(
            "EINVAL",
            `chain ${table} ${chain}: policies of built-in chains belong to the system on iptables (the nftables backend has them in its own base chains)`,
          );
        if (want) {
          const keys = want.rules.map((r) => r.key);
          if (!have) decl.push(`:${full} - [0:0]`);
          const changed = this.planRules(full, d.family, want.rules, have ?? [], ops);
          if (want.builtin && !kt.jumps.has(chain)) {
            jumps.push(`-I ${chain} 1 -j ${full}`);
            commits.push(() => kt.jumps.add(chain));
          }
          if (changed || !have) {
            stats.chainsChanged++;
            commits.push(() => kt.chains.set(full, keys));
          }
        } else if (have) {
          if (kt.jumps.has(chain)) {
            removals.push(`-D ${chain} -j ${full}`);
            commits.push(() => kt.jumps.delete(chain));
          }
          removals.push(`-F ${full}`);
          stats.chainsChanged++;
          commits.push(() => kt.chains.delete(full));
        }
      }
      // Chains go after every flush, so a chain another removed chain jumps to can go too.
      const deletes = removals.filter((l) => l.startsWith("-F ")).map((l) => `-X ${l.slice(3)}`);
      const lines = [...decl, ...ops, ...jumps, ...removals, ...deletes];
      if (lines.length) text += `*${table}\n${lines.join("\n")}\nCOMMIT\n`;
    }
    return text;
  }

  /** Deletions (last first) and insertions (by final position) for one chain; false if equal. */
  private planRules(
    full: string,
    family: IpVersion,
    want: readonly ManagedRule[],
    have: ReadonlyArray<string | undefined>,
    ops: string[],
  ): boolean {
    if (have.length === want.length && have.every((k, i) => k === want[i]!.key)) return false;
    const diff = diffRules(
      have.map((key) => ({ key, handle: undefined })),
      want.map((r) => r.key),
    );
    for (const i of [...diff.deletes].reverse()) ops.push(`-D ${full} ${i + 1}`);
    for (const ins of diff.inserts)
      ops.push(`-I ${full} ${ins.want + 1} ${this.renderRule(family, want[ins.want]!)}`);
    return true;
  }

  /** The rule's arguments with the owner's chain and set names and the marker comment. */
  renderRule(family: IpVersion, r: ManagedRule): string {
    const args = r.translated.args.map((a) =>
      typeof a === "string"
        ? quoteArg(a)
        : "chain" in a
          ? iptablesChainName(this.owner, a.chain)
          : ipsetName(this.owner, family, a.set),
    );
    const marker = ["-m", "comment", "--comment", quoteArg(markedComment(r.comment, r.key))];
    const j = args.findIndex(
      (a, i) =>
        (a === "-j" || a === "-g" || a === "--jump" || a === "--goto") && (i === 0 || args[i - 1] !== "!"),
    );
    if (j < 0) args.push(...marker);
    else args.splice(j, 0, ...marker);
    return args.join(" ");
  }

  private async read(families: IpVersion[]): Promise<void> {
    const prefix = `${this.owner}-`;
    const [sets, ...saves] = await Promise.all([
      this.exec(["ipset", "save"]),
      ...families.map((f) => this.exec([tool(f, "save")])),
    ]);
    this.sets = new Map(
      [...parseIpsetSave(sets, prefix)].map(([n, s]) => [n, { type: s.type, members: s.members }]),
    );
    this.tables = new Map();
    families.forEach((f, i) => this.tables!.set(f, parseSave(saves[i]!, prefix)));
  }

  async counters(family: IpVersion, table: TableName, chain: string): Promise<TrafficCounters> {
    const full = iptablesChainName(this.owner, chain);
    const out = await this.exec([tool(family, "save"), "-c", "-t", table]);
    const acc = { packets: 0, bytes: 0 };
    for (const line of out.split("\n")) {
      const m = /^\[(\d+):(\d+)\] -A (\S+) /.exec(line);
      if (m && m[3] === full) {
        acc.packets += Number(m[1]);
        acc.bytes += Number(m[2]);
      }
    }
    return acc;
  }

  async destroy(families: readonly IpVersion[]): Promise<void> {
    await this.apply(
      families.map((family) => ({ family, chains: new Map(), sets: new Map() })),
      undefined,
    );
    this.tables = undefined;
  }
}

/** The owner's chains, their rules' keys and the built-in jumps, table by table. */
export function parseSave(text: string, prefix: string): Map<TableName, KernelTable> {
  const out = new Map<TableName, KernelTable>(
    TABLE_NAMES.map((t) => [t, { chains: new Map(), jumps: new Set() }]),
  );
  let table: KernelTable | undefined;
  let tableName: TableName | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("*")) {
      tableName = TABLE_NAMES.find((t) => t === line.slice(1));
      table = tableName ? out.get(tableName) : undefined;
    } else if (!table || !tableName) continue;
    else if (line.startsWith(":")) {
      const name = line.slice(1).split(" ")[0]!;
      if (name.startsWith(prefix)) table.chains.set(name, []);
    } else if (line.startsWith("-A ")) {
      const chain = line.slice(3).split(" ")[0]!;
      const rules = table.chains.get(chain);
      if (rules) rules.push(MARKER_IN_LINE.exec(line)?.[1]);
      else if (isBuiltin(tableName, chain) && line === `-A ${chain} -j ${prefix}${chain}`)
        table.jumps.add(chain);
    }
  }
  return out;
}
