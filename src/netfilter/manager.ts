/**
 * NetfilterManager: the API of an iptables manager (Neutron's IptablesManager and
 * IpsetManager) over the iptables or the nftables backend. Changes collect in memory; apply()
 * sends what changed since the last apply, atomically per backend transaction.
 */
import {
  chainId,
  setId,
  type ApplyStats,
  type Backend,
  type DesiredChain,
  type DesiredFamily,
  type DesiredSet,
} from "./backend.js";
import { NetfilterError } from "./errors.js";
import { ManagedTable } from "./model.js";
import { validateOwner } from "./naming.js";
import { SET_NAME_RE } from "./set-match.js";
import { canonicalMembers } from "./sets.js";
import {
  BUILTIN_CHAINS,
  SET_TYPES,
  TABLE_NAMES,
  type IpVersion,
  type SetType,
  type TableName,
  type TrafficCounters,
} from "./types.js";

export type Tables = Readonly<Record<TableName, ManagedTable>>;

export interface NetfilterManagerOptions {
  /** Prefix of the owner's chains and sets, name of its nft tables. */
  owner: string;
  backend: Backend;
  /** Manage IPv6 too (default true). */
  ipv6?: boolean;
  /** The families to manage (overrides ipv6): `[6]` leaves the owner's IPv4 table alone. */
  families?: IpVersion[];
}

interface ManagedSet {
  type: SetType;
  members: Set<string>;
}

export class NetfilterManager {
  readonly owner: string;
  readonly ipv4: Tables;
  readonly ipv6: Tables;
  private readonly backend: Backend;
  private readonly families: IpVersion[];
  private readonly sets: Record<IpVersion, Map<string, ManagedSet>> = { 4: new Map(), 6: new Map() };
  private dirtyChains = new Set<string>();
  private dirtySets = new Set<string>();
  /** Until the first successful apply the backend compares everything. */
  private everything = true;
  private deferred = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(opts: NetfilterManagerOptions) {
    this.owner = validateOwner(opts.owner);
    this.backend = opts.backend;
    this.families = opts.families ?? (opts.ipv6 === false ? [4] : [4, 6]);
    const hooks = {
      dirty: (f: IpVersion, t: TableName, c: string) => void this.dirtyChains.add(chainId(f, t, c)),
      setType: (f: IpVersion, s: string) => this.sets[f].get(s)?.type,
    };
    const tables = (f: IpVersion): Tables =>
      Object.fromEntries(TABLE_NAMES.map((t) => [t, new ManagedTable(f, t, hooks)])) as unknown as Tables;
    this.ipv4 = tables(4);
    this.ipv6 = tables(6);
  }

  get backendKind(): Backend["kind"] {
    return this.backend.kind;
  }

  tables(family: IpVersion): Tables {
    return family === 4 ? this.ipv4 : this.ipv6;
  }

  /**
   * Sets the members of a set (created on first call), replacing the previous members. Rules
   * match it with `-m set --match-set NAME src|dst`; its type cannot change while it exists.
   */
  setMembers(name: string, family: IpVersion, members: Iterable<string>, type: SetType = "hash:net"): void {
    if (!SET_NAME_RE.test(name))
      throw new NetfilterError(
        "EINVAL",
        `set: ${JSON.stringify(name)} must be a letter, then up to 30 letters, digits, _ . -`,
      );
    if (!SET_TYPES.includes(type))
      throw new NetfilterError(
        "EINVAL",
        `set ${name}: type ${JSON.stringify(type)} is not one of ${SET_TYPES.join(", ")}`,
      );
    this.family(family);
    const existing = this.sets[family].get(name);
    if (existing && existing.type !== type)
      throw new NetfilterError(
        "EINVAL",
        `set ${name}: exists as ${existing.type}; remove it (and the rules using it) and apply before making it ${type}`,
      );
    const canonical = canonicalMembers(name, type, family, members);
    if (existing && sameMembers(existing.members, canonical)) return;
    this.sets[family].set(name, { type, members: canonical });
    this.dirtySets.add(setId(family, name));
  }

  /** The members as the manager holds them (canonical text). */
  getMembers(name: string, family: IpVersion): string[] {
    return [...(this.sets[family].get(name)?.members ?? [])].sort();
  }

  removeSet(name: string, family: IpVersion): void {
    if (!this.sets[family].has(name)) return;
    for (const t of TABLE_NAMES)
      if (this.tables(family)[t].usesSet(name))
        throw new NetfilterError(
          "EINVAL",
          `set ${name}: rules of the ${t} table still match it; remove them first`,
        );
    this.sets[family].delete(name);
    this.dirtySets.add(setId(family, name));
  }

  /** Runs fn with apply() calls deferred, then applies once (Neutron's defer_apply). */
  async deferApply<T>(fn: () => Promise<T> | T): Promise<T> {
    this.deferred++;
    try {
      return await fn();
    } finally {
      this.deferred--;
      if (this.deferred === 0) await this.apply();
    }
  }

  /** Sends what changed since the last apply; one apply at a time. */
  apply(): Promise<ApplyStats | undefined> {
    if (this.deferred > 0) return Promise.resolve(undefined);
    const run = this.queue.then(() => this.applyNow());
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async applyNow(): Promise<ApplyStats> {
    const changes = this.everything ? undefined : { chains: this.dirtyChains, sets: this.dirtySets };
    const [chains, sets] = [this.dirtyChains, this.dirtySets];
    this.dirtyChains = new Set();
    this.dirtySets = new Set();
    try {
      const stats = await this.backend.apply(this.desired(), changes);
      this.everything = false;
      return stats;
    } catch (e) {
      // The backend reads the kernel again next time; everything is compared then.
      this.everything = true;
      for (const c of chains) this.dirtyChains.add(c);
      for (const s of sets) this.dirtySets.add(s);
      throw e;
    }
  }

  /** Packets and bytes through the rules of a chain, summed over every table and family that has it. */
  async getTrafficCounters(
    chain: string,
    opts: { family?: IpVersion; table?: TableName } = {},
  ): Promise<TrafficCounters | undefined> {
    let found = false;
    const acc = { packets: 0, bytes: 0 };
    for (const f of this.families) {
      if (opts.family !== undefined && opts.family !== f) continue;
      for (const t of TABLE_NAMES) {
        if (opts.table !== undefined && opts.table !== t) continue;
        const table = this.tables(f)[t];
        if (!table.liveChains.includes(chain)) continue;
        found = true;
        const c = await this.backend.counters(f, t, chain);
        acc.packets += c.packets;
        acc.bytes += c.bytes;
      }
    }
    return found ? acc : undefined;
  }

  /** Removes everything of the owner from the kernel; the desired state stays (a later apply writes it again). */
  async destroy(): Promise<void> {
    await this.queue;
    await this.backend.destroy(this.families);
  }

  private family(f: IpVersion): void {
    if (!this.families.includes(f))
      throw new NetfilterError("EINVAL", `family: IPv${f} is not managed (ipv6: false)`);
  }

  private desired(): DesiredFamily[] {
    return this.families.map((family) => {
      const chains = new Map<string, DesiredChain>();
      for (const t of TABLE_NAMES) {
        const table = this.tables(family)[t];
        for (const c of table.liveChains) {
          const builtin = (BUILTIN_CHAINS[t] as readonly string[]).includes(c);
          const d: DesiredChain = { table: t, name: c, builtin, rules: table.getChain(c) };
          const policy = table.policy(c);
          if (policy) d.policy = policy;
          chains.set(`${t}/${c}`, d);
        }
      }
      const sets = new Map<string, DesiredSet>();
      for (const [name, s] of this.sets[family]) sets.set(name, { name, type: s.type, members: s.members });
      return { family, chains, sets };
    });
  }
}

function sameMembers(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const m of a) if (!b.has(m)) return false;
  return true;
}
