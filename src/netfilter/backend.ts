/**
 * What a backend receives on apply: the desired state of every family, and what changed since
 * the last successful apply. A backend reads the kernel once (on its first apply), then sends
 * only the changes; after a failure it reads the kernel again.
 */
import type { ManagedRule } from "./model.js";
import type { IpVersion, SetType, TableName, TrafficCounters, Verdict } from "./types.js";

export interface DesiredChain {
  table: TableName;
  name: string;
  builtin: boolean;
  policy?: Verdict;
  rules: ManagedRule[];
}

export interface DesiredSet {
  name: string;
  type: SetType;
  members: ReadonlySet<string>;
}

export interface DesiredFamily {
  family: IpVersion;
  /** By `table/chain`. */
  chains: ReadonlyMap<string, DesiredChain>;
  sets: ReadonlyMap<string, DesiredSet>;
}

/** What changed: `family/table/chain` and `family/set` keys; undefined means everything. */
export interface Changes {
  chains: ReadonlySet<string>;
  sets: ReadonlySet<string>;
}

export interface ApplyStats {
  /** Processes run (nft, iptables-restore, ipset …), reads included. */
  processes: number;
  /** Whether the kernel state was read in this apply (first use, or after a failure). */
  readState: boolean;
  /** Chains and sets that changed in the kernel. */
  chainsChanged: number;
  setsChanged: number;
}

export interface Backend {
  readonly kind: "nftables" | "iptables";
  apply(desired: readonly DesiredFamily[], changes: Changes | undefined): Promise<ApplyStats>;
  /** Packets and bytes of every rule of one of the owner's chains, summed. */
  counters(family: IpVersion, table: TableName, chain: string): Promise<TrafficCounters>;
  /** Removes everything the owner has in the kernel (its tables, chains, jumps and sets). */
  destroy(families: readonly IpVersion[]): Promise<void>;
}

export const chainId = (family: IpVersion, table: TableName, chain: string): string =>
  `${family}/${table}/${chain}`;
export const setId = (family: IpVersion, name: string): string => `${family}/${name}`;
