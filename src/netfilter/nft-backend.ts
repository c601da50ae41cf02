/**
 * The native nftables backend: the owner's own tables (`ip OWNER`, `ip6 OWNER`), built-in chains
 * as base chains at iptables' hooks and priorities, sets as named nft sets. The kernel is read
 * once; then each apply sends one transaction with only what changed.
 */
import type { Chain, Interface, Transaction } from "../nftables/index.js";
import {
  type ApplyStats,
  type Backend,
  type Changes,
  type DesiredChain,
  type DesiredFamily,
  type DesiredSet,
} from "./backend.js";
import { NetfilterError } from "./errors.js";
import { nftChainName, validateOwner } from "./naming.js";
import { readChain, readTable, type KernelTableView } from "./nft-read.js";
import { diffRules, handlesNeeded, type KernelRule } from "./rule-diff.js";
import { memberFromNftKey, nftKey, nftSetSpec } from "./sets.js";
import type { BuiltinChain, IpVersion, TableName, TrafficCounters, Verdict } from "./types.js";

/** Hook, type and priority of each iptables built-in chain, as iptables-nft registers them. */
export function baseChainSpec(
  table: TableName,
  chain: BuiltinChain,
): Pick<Chain, "type" | "hook" | "priority"> {
  const hook = chain.toLowerCase() as Chain["hook"];
  if (table === "raw") return { type: "filter", hook, priority: -300 };
  if (table === "mangle") return { type: chain === "OUTPUT" ? "route" : "filter", hook, priority: -150 };
  if (table === "nat")
    return { type: "nat", hook, priority: chain === "PREROUTING" || chain === "OUTPUT" ? -100 : 100 };
  return { type: "filter", hook, priority: 0 };
}

export interface NftablesBackendOptions {
  owner: string;
  /**
   * The nftables connection (an Interface of any table): the owner's tables are reached through
   * `forTable`, and each apply is one `runAll`. The CLI builds the real one; tests pass the fake.
   */
  nft: Interface;
}

interface KernelChain {
  rules: KernelRule[];
  /** A base chain's policy as last written; undefined when read back (the listing lacks it). */
  policy?: Verdict;
}
interface KernelSet {
  /** Canonical members, or the raw keys until the set's type is known. */
  members: Set<string> | undefined;
  raw: string[][] | undefined;
}
interface KernelFamily {
  exists: boolean;
  chains: Map<string, KernelChain>;
  sets: Map<string, KernelSet>;
}

const nftFamily = (f: IpVersion): "ip" | "ip6" => (f === 4 ? "ip" : "ip6");

export class NftablesBackend implements Backend {
  readonly kind = "nftables";
  private readonly owner: string;
  private readonly nft: Record<IpVersion, Interface>;
  private state: Map<IpVersion, KernelFamily> | undefined;
  private processes = 0;

  constructor(private readonly opts: NftablesBackendOptions) {
    this.owner = validateOwner(opts.owner);
    this.nft = { 4: opts.nft.forTable("ip", this.owner), 6: opts.nft.forTable("ip6", this.owner) };
  }

  async apply(desired: readonly DesiredFamily[], changes: Changes | undefined): Promise<ApplyStats> {
    this.processes = 0;
    const readState = this.state === undefined;
    if (!this.state) {
      const families = await Promise.all(
        desired.map(async (d) => [d.family, await this.read(d.family)] as const),
      );
      this.state = new Map(families);
      changes = undefined;
    }
    const stats: ApplyStats = { processes: 0, readState, chainsChanged: 0, setsChanged: 0 };
    const txs: Transaction[] = [];
    const commits: Array<() => void> = [];
    try {
      for (const d of desired) {
        const tx = await this.plan(d, this.state.get(d.family)!, changes, stats, commits);
        if (tx.size > 0) txs.push(tx);
      }
      if (txs.length > 0) {
        this.processes++;
        await this.opts.nft.runAll(txs);
      }
    } catch (e) {
      this.state = undefined;
      throw new NetfilterError("EAPPLY", `nftables backend: ${(e as Error).message}`, { cause: e });
    }
    for (const c of commits) c();
    stats.processes = this.processes;
    return stats;
  }

  /** The transaction for one family; `commits` update the kernel view once it has run. */
  private async plan(
    d: DesiredFamily,
    k: KernelFamily,
    changes: Changes | undefined,
    stats: ApplyStats,
    commits: Array<() => void>,
  ): Promise<Transaction> {
    const nft = this.nft[d.family];
    const tx = nft.newTransaction();
    const late: Array<(tx: Transaction) => void> = [];
    const lateDeletes: Array<(tx: Transaction) => void> = [];
    if (!k.exists && d.chains.size === 0 && d.sets.size === 0) return tx;
    if (!k.exists) {
      tx.add({ kind: "table", comment: `netfilter manager of ${this.owner}` });
      commits.push(() => (k.exists = true));
    }
    // Sets: declarations and element changes first, deletions after the rules that used them.
    const setNames = changes
      ? [...changes.sets].filter((s) => s.startsWith(`${d.family}/`)).map((s) => s.slice(2))
      : [...new Set([...d.sets.keys(), ...k.sets.keys()])];
    for (const name of setNames.sort()) {
      const want = d.sets.get(name);
      const have = k.sets.get(name);
      if (want && this.planSet(tx, d.family, want, have)) {
        stats.setsChanged++;
        commits.push(() => k.sets.set(name, { members: want.members as Set<string>, raw: undefined }));
      } else if (!want && have) {
        stats.setsChanged++;
        lateDeletes.push((t) => t.delete({ kind: "set", name }));
        commits.push(() => k.sets.delete(name));
      }
    }
    // Chains by nft name; a kernel chain the manager has no id for is not wanted.
    const chainNames = new Map<string, string | undefined>();
    const ids = changes
      ? [...changes.chains].filter((c) => c.startsWith(`${d.family}/`)).map((c) => c.slice(2))
      : [...d.chains.keys()];
    for (const id of ids) {
      const [table, chain] = id.split("/") as [TableName, string];
      chainNames.set(nftChainName(table, chain), id);
    }
    if (!changes)
      for (const name of k.chains.keys()) if (!chainNames.has(name)) chainNames.set(name, undefined);
    const ruleOps: Array<(tx: Transaction) => void> = [];
    for (const [name, id] of [...chainNames].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const want = id === undefined ? undefined : d.chains.get(id);
      const have = k.chains.get(name);
      if (want) {
        const policy = want.policy ?? "ACCEPT";
        const declare = !have || (want.builtin && have.policy !== policy);
        if (declare) tx.add(this.chainObject(want, name));
        const changed = await this.planRules(d.family, name, want, have ?? { rules: [] }, ruleOps);
        if (changed || declare) {
          if (changed || !have) stats.chainsChanged++;
          const rules = changed?.rules ?? have?.rules ?? [];
          commits.push(() => k.chains.set(name, want.builtin ? { rules, policy } : { rules }));
        }
      } else if (have) {
        stats.chainsChanged++;
        late.push((t) => t.flush({ kind: "chain", name }));
        lateDeletes.unshift((t) => t.delete({ kind: "chain", name }));
        commits.push(() => k.chains.delete(name));
      }
    }
    for (const op of [...ruleOps, ...late, ...lateDeletes]) op(tx);
    return tx;
  }

  private chainObject(want: DesiredChain, name: string): Chain {
    if (!want.builtin) return { kind: "chain", name };
    const spec = baseChainSpec(want.table, want.name as BuiltinChain);
    return { kind: "chain", name, ...spec, policy: want.policy === "DROP" ? "drop" : "accept" };
  }

  /** Element changes of one set; false when nothing changes. */
  private planSet(
    tx: Transaction,
    family: IpVersion,
    want: DesiredSet,
    have: KernelSet | undefined,
  ): boolean {
    if (!have) {
      tx.add({ kind: "set", name: want.name, ...nftSetSpec(want.type, family) });
      for (const m of want.members) tx.add({ kind: "element", set: want.name, key: nftKey(want.type, m) });
      return true;
    }
    const old =
      have.members ?? new Set((have.raw ?? []).map((key) => memberFromNftKey(want.type, family, key)));
    have.members = old;
    let changed = false;
    // Deletions first: an interval replaced by a larger one would otherwise overlap it.
    for (const m of old)
      if (!want.members.has(m)) {
        tx.delete({ kind: "element", set: want.name, key: nftKey(want.type, m) });
        changed = true;
      }
    for (const m of want.members)
      if (!old.has(m)) {
        tx.add({ kind: "element", set: want.name, key: nftKey(want.type, m) });
        changed = true;
      }
    return changed;
  }

  /** Rule changes of one chain; the kernel view after them, or undefined when nothing changes. */
  private async planRules(
    family: IpVersion,
    name: string,
    want: DesiredChain,
    have: KernelChain,
    ops: Array<(tx: Transaction) => void>,
  ): Promise<KernelChain | undefined> {
    const keys = want.rules.map((r) => r.key);
    if (have.rules.length === keys.length && have.rules.every((r, i) => r.key === keys[i])) return undefined;
    let diff = diffRules(have.rules, keys);
    if (handlesNeeded(diff).some((i) => have.rules[i]!.handle === undefined)) {
      // Rules added since the last listing: one listing of this chain gives their handles.
      have.rules = await this.readChain(family, name);
      diff = diffRules(have.rules, keys);
    }
    const rules = have.rules;
    for (const i of diff.deletes) {
      const handle = rules[i]!.handle!;
      ops.push((tx) => tx.delete({ kind: "rule", chain: name, rule: "", handle }));
    }
    for (const ins of diff.inserts) {
      const r = want.rules[ins.want]!;
      const obj = {
        kind: "rule" as const,
        chain: name,
        rule: r.translated.nftCounted,
        comment: r.kernelComment,
      };
      const before = ins.before === undefined ? undefined : rules[ins.before]!.handle!;
      ops.push((tx) => (before === undefined ? tx.add(obj) : tx.insert({ ...obj, handle: before })));
    }
    return {
      rules: keys.map((key, j) => ({
        key,
        handle: diff.kept[j]! >= 0 ? rules[diff.kept[j]!]!.handle : undefined,
      })),
    };
  }

  private async readChain(family: IpVersion, name: string): Promise<KernelRule[]> {
    this.processes++;
    return readChain(this.nft[family], name);
  }

  private async read(family: IpVersion): Promise<KernelFamily> {
    let view: KernelTableView;
    try {
      this.processes++;
      view = await readTable(this.nft[family]);
    } catch (e) {
      throw new NetfilterError(
        "EAPPLY",
        `nftables backend: reading table ${nftFamily(family)} ${this.owner}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    return {
      exists: view.exists,
      chains: new Map([...view.chains].map(([name, rules]) => [name, { rules }])),
      sets: new Map([...view.sets].map(([name, raw]) => [name, { members: undefined, raw }])),
    };
  }

  async counters(family: IpVersion, table: TableName, chain: string): Promise<TrafficCounters> {
    const rules = await this.nft[family].listRules(nftChainName(table, chain), { text: true });
    const acc = { packets: 0, bytes: 0 };
    for (const r of rules) {
      const m = /\bcounter packets (\d+) bytes (\d+)/.exec(r.rule);
      if (m) {
        acc.packets += Number(m[1]);
        acc.bytes += Number(m[2]);
      }
    }
    return acc;
  }

  async destroy(families: readonly IpVersion[]): Promise<void> {
    for (const f of families) {
      const nft = this.nft[f];
      await nft.run(nft.newTransaction().add({ kind: "table" }).delete({ kind: "table" }));
    }
    this.state = undefined;
  }
}
