/**
 * What the translator accumulates while it reads one rule: nft expressions in the order the
 * iptables options came, statements and the verdict, the iptables arguments to send to
 * iptables-restore (with chain and set names left as references for the backend to fill in).
 */
import type { IpVersion, SetType, TableName } from "./types.js";

export interface TranslateContext {
  family: IpVersion;
  table: TableName;
  /** The chain the rule goes into (iptables name), for checks that depend on the hook. */
  chain?: string;
  /** Rules for a bridge-family table, where `-m physdev` has an nft translation. */
  bridge?: boolean;
  /**
   * The nft name of a chain the rule may jump to (`$name` or `name`), or undefined when that is
   * not one of the caller's chains.
   */
  chainRef?: (name: string) => string | undefined;
  /** The type of a set the rule matches (`-m set`), or undefined when it is not declared. */
  setType?: (name: string) => SetType | undefined;
  /** The nft name of a set; default: the name as written. */
  setRef?: (name: string) => string;
}

/** An argument for iptables-restore: text, or a chain or set the backend names. */
export type IptablesArg = string | { chain: string } | { set: string };

export interface TranslatedRule {
  /** nft rule text without the counter: `ip saddr 10.0.0.0/8 tcp dport 22 accept`. */
  nft: string;
  /** The same with `counter` where nft wants it (before statements and the verdict). */
  nftCounted: string;
  /** Comments of `-m comment`, in order. */
  comments: string[];
  /** Chains the rule jumps or goes to (iptables names, `$` removed). */
  jumps: string[];
  /** Sets the rule matches. */
  sets: string[];
  /** The rule as iptables arguments, comments included. */
  args: IptablesArg[];
  /** The iptables target (`ACCEPT`, `DNAT`, a chain) or undefined. */
  target?: string;
}

/** One `-m` (or the implicit protocol match): its slot in the expressions and its options so far. */
export interface ModuleInstance {
  name: string;
  slot: number;
  values: Map<string, { args: string[]; negated: boolean }>;
  /** Renders what was collected; called at the end of the rule. */
  finish?: (st: RuleState, m: ModuleInstance) => string[];
}

export class RuleState {
  readonly exprs: string[][] = [];
  readonly statements: string[] = [];
  verdict: string | undefined;
  target: string | undefined;
  readonly comments: string[] = [];
  readonly jumps: string[] = [];
  readonly sets: string[] = [];
  readonly args: IptablesArg[] = [];
  readonly modules: ModuleInstance[] = [];
  proto: string | undefined;
  protoNegated = false;
  protoSlot: number | undefined;
  /** An expression that implies the protocol (`tcp dport`) was written: `meta l4proto` can go. */
  protoImplied = false;

  constructor(
    readonly rule: string,
    readonly ctx: TranslateContext,
  ) {}

  get v6(): boolean {
    return this.ctx.family === 6;
  }
  /** `ip` or `ip6`. */
  get ipKw(): string {
    return this.v6 ? "ip6" : "ip";
  }

  slot(): number {
    this.exprs.push([]);
    return this.exprs.length - 1;
  }

  emit(...parts: string[]): void {
    this.exprs.push(parts);
  }

  module(name: string): ModuleInstance {
    const m: ModuleInstance = { name, slot: this.slot(), values: new Map() };
    this.modules.push(m);
    return m;
  }
}

export function op(negated: boolean): string {
  return negated ? "!= " : "";
}
