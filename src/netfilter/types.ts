/** The vocabulary of an iptables manager: families, tables, their built-in chains, set types. */

export type IpVersion = 4 | 6;
export type TableName = "filter" | "nat" | "mangle" | "raw";
export const TABLE_NAMES: readonly TableName[] = ["filter", "nat", "mangle", "raw"];

export type BuiltinChain = "PREROUTING" | "INPUT" | "FORWARD" | "OUTPUT" | "POSTROUTING";

/** The built-in chains of each iptables table (the hooks it registers). */
export const BUILTIN_CHAINS: Readonly<Record<TableName, readonly BuiltinChain[]>> = {
  raw: ["PREROUTING", "OUTPUT"],
  mangle: ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
  nat: ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
  filter: ["INPUT", "FORWARD", "OUTPUT"],
};

export function isBuiltin(table: TableName, chain: string): chain is BuiltinChain {
  return (BUILTIN_CHAINS[table] as readonly string[]).includes(chain);
}

/** The ipset types real software uses; each becomes an nft set of the matching type. */
export type SetType = "hash:ip" | "hash:net" | "hash:ip,port" | "hash:net,iface";
export const SET_TYPES: readonly SetType[] = ["hash:ip", "hash:net", "hash:ip,port", "hash:net,iface"];

/** Options of addRule, as Neutron's add_rule has them. */
export interface RuleOptions {
  /** Put the rule before every rule added without top (in the order top rules were added). */
  top?: boolean;
  /** A label for clearRulesByTag. */
  tag?: string;
  /** A comment carried by the rule in the kernel (iptables `-m comment`, nft `comment`). */
  comment?: string;
}

export interface TrafficCounters {
  packets: number;
  bytes: number;
}

export type Verdict = "ACCEPT" | "DROP";
