/**
 * Types of the nftables library. Objects never carry their family or table: an
 * {@link Interface} is bound to one table, as in knftables, so a caller cannot
 * touch another component's table by mistake.
 */

export type Family = "ip" | "ip6" | "inet" | "arp" | "bridge" | "netdev";
export const FAMILIES: readonly Family[] = ["ip", "ip6", "inet", "arp", "bridge", "netdev"];

export type ChainType = "filter" | "nat" | "route";
export type ChainHook = "prerouting" | "input" | "forward" | "output" | "postrouting" | "ingress" | "egress";
export type ChainPolicy = "accept" | "drop";

/** Named priorities nft understands; an offset may follow (`dstnat - 10`). */
export type NamedPriority = "raw" | "mangle" | "dstnat" | "filter" | "security" | "srcnat" | "out";
/** A base chain priority: a number, a name, or a name with an offset such as `"dstnat - 10"`. */
export type Priority = number | NamedPriority | `${NamedPriority} ${"+" | "-"} ${number}`;

export interface Table {
  kind: "table";
  comment?: string;
  /** Read only: filled in by listing. */
  handle?: number;
}

export interface Chain {
  kind: "chain";
  name: string;
  /** Setting type, hook and priority makes it a base chain; all three or none. */
  type?: ChainType;
  hook?: ChainHook;
  priority?: Priority;
  /** For netdev ingress/egress base chains. */
  device?: string;
  policy?: ChainPolicy;
  comment?: string;
  handle?: number;
}

export interface Rule {
  kind: "rule";
  chain: string;
  /** Rule text in nft syntax (build it with {@link concat} from values you did not write yourself). */
  rule: string;
  comment?: string;
  /** Position: with add, after the rule at this index; with insert, before it. */
  index?: number;
  /** Position by handle (add: after; insert: before), or the rule to replace/delete. */
  handle?: number;
}

export type SetFlag = "constant" | "interval" | "timeout" | "dynamic";
export type SetPolicy = "performance" | "memory";

interface SetLike {
  name: string;
  /** Data type, e.g. `ipv4_addr . inet_proto . inet_service`; for maps `key : value`. */
  type?: string;
  /** Alternative to type, e.g. `ip saddr . tcp dport`; for maps `key : value`. */
  typeof?: string;
  flags?: SetFlag[];
  /** Seconds. */
  timeout?: number;
  /** Seconds. */
  gcInterval?: number;
  size?: number;
  policy?: SetPolicy;
  autoMerge?: boolean;
  /** Give every element a counter. */
  counter?: boolean;
  comment?: string;
  handle?: number;
}

export interface NSet extends SetLike {
  kind: "set";
}
export interface NMap extends SetLike {
  kind: "map";
}

export interface Element {
  kind: "element";
  /** Exactly one of set or map. */
  set?: string;
  map?: string;
  /** Key as a tuple of values; more than one makes a concatenation. */
  key: string[];
  /** Map value as a tuple (a verdict such as `["jump", "chain"]` is one value written as words). */
  value?: string[];
  comment?: string;
  /** Seconds, for sets with the timeout flag. */
  timeout?: number;
  counter?: boolean;
  /** Read only: counter values of a listed element. */
  packets?: number;
  bytes?: number;
}

export interface Flowtable {
  kind: "flowtable";
  name: string;
  /** Defaults to `filter` (0) as knftables does. */
  priority?: number | "filter" | `filter ${"+" | "-"} ${number}`;
  devices?: string[];
  handle?: number;
}

export interface Counter {
  kind: "counter";
  name: string;
  comment?: string;
  packets?: number;
  bytes?: number;
  handle?: number;
}

export type NftObject = Table | Chain | Rule | NSet | NMap | Element | Flowtable | Counter;
export type ObjectKind = NftObject["kind"];

export type Verb = "add" | "create" | "insert" | "replace" | "delete" | "destroy" | "flush" | "reset";

export interface Operation {
  verb: Verb;
  object: NftObject;
}

/** What `list()` can enumerate by name. */
export type ListKind = "chains" | "sets" | "maps" | "counters" | "flowtables";

/** Capabilities of the nft binary and kernel in use, probed once per process. */
export interface Features {
  version: string;
  /** The `destroy` keyword (nft >= 1.0.8 with kernel >= 6.3). */
  destroy: boolean;
  /** `nft --json` output. */
  json: boolean;
  /** Comments on tables, chains and sets (nft >= 0.9.7). */
  objectComments: boolean;
}

/** A table's name and family, as `listTables` gives them. */
export interface TableRef {
  family: Family;
  name: string;
}

/** The order `listTables` gives: family, then name (as strings). */
export function byFamilyThenName(a: TableRef, b: TableRef): number {
  if (a.family !== b.family) return a.family < b.family ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * The library's API, implemented by {@link NFTables} against the kernel and by the fake in memory.
 * Bound to one table, as in knftables; {@link Interface.forTable} reaches another table through the
 * same connection (namespace and nft binary, or the same fake ruleset), and
 * {@link Interface.runAll} changes several tables in one atomic run.
 */
export interface Interface {
  readonly family: Family;
  readonly table: string;
  newTransaction(): import("./transaction.js").Transaction;
  /** Another table through the same connection. */
  forTable(family: Family, table: string): Interface;
  /** Applies every operation of the transaction atomically, or none. */
  run(tx: import("./transaction.js").Transaction): Promise<void>;
  /** Applies transactions of any tables of this connection in one atomic run (one nft process). */
  runAll(txs: readonly import("./transaction.js").Transaction[]): Promise<void>;
  /** Validates the transaction against the current ruleset without applying it. */
  check(tx: import("./transaction.js").Transaction): Promise<void>;
  /** What the nft binary and kernel can do (probed once, remembered). */
  features(): Promise<Features>;
  /** Tables in the ruleset (of one family when given), by family then name. */
  listTables(family?: Family): Promise<TableRef[]>;
  /** Names of the objects of one kind in the table, sorted. */
  list(kind: ListKind): Promise<string[]>;
  /**
   * Rules of a chain, in order, with handle and comment. Their text costs a second nft run and
   * is only filled in with `text` (otherwise `rule` is "").
   */
  listRules(chain: string, opts?: { text?: boolean }): Promise<Rule[]>;
  listElements(kind: "set" | "map", name: string): Promise<Element[]>;
  /**
   * The elements of these keys (set or map, key; value and comment ignored) with their value and
   * comment, in one read however many sets; fails with ENOENT when one of them is missing.
   */
  getElements(keys: readonly Element[]): Promise<Element[]>;
  listCounters(): Promise<Counter[]>;
  /**
   * Everything in the table in one read: chains, rules (text only with `text`), sets and maps
   * with their elements, counters, flowtables. ENOENT when the table does not exist.
   */
  listTable(opts?: { text?: boolean }): Promise<import("./dump.js").TableState>;
  /** The whole table as canonical nft text (objects sorted by name), for comparisons and backups. */
  dump(): Promise<string>;
}
