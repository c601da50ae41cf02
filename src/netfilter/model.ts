/**
 * The desired state of one iptables table of one family, as Neutron's IptablesTable keeps it:
 * user chains, rules per chain (top rules first, each group in the order added), tags. Nothing
 * here touches the kernel; every change marks its chain dirty for the next apply.
 */
import { NetfilterError } from "./errors.js";
import { MARKER_PREFIX, markedComment, nftChainName, ruleKey, validateChainName } from "./naming.js";
import { translateRule, type TranslatedRule } from "./translate.js";
import {
  isBuiltin,
  type BuiltinChain,
  type IpVersion,
  type RuleOptions,
  type SetType,
  type TableName,
  type Verdict,
} from "./types.js";

export interface ManagedRule {
  chain: string;
  /** The rule as given (after `$chain` names). */
  rule: string;
  top: boolean;
  tag?: string;
  comment?: string;
  translated: TranslatedRule;
  /** Identity: same key, same rule in the same place. */
  key: string;
  /** The comment written to the kernel: the caller's comments and the marker. */
  kernelComment: string;
}

export interface TableHooks {
  dirty(family: IpVersion, table: TableName, chain: string): void;
  setType(family: IpVersion, name: string): SetType | undefined;
}

interface ChainRules {
  top: ManagedRule[];
  bottom: ManagedRule[];
}

export class ManagedTable {
  private readonly chains = new Map<string, ChainRules>();
  private readonly policies = new Map<BuiltinChain, Verdict>();

  constructor(
    readonly family: IpVersion,
    readonly name: TableName,
    private readonly hooks: TableHooks,
  ) {}

  /** User chains (built-in chains always exist). */
  get userChains(): string[] {
    return [...this.chains.keys()].filter((c) => !isBuiltin(this.name, c)).sort();
  }

  /** Chains that have rules or are user chains: what the backends materialise. */
  get liveChains(): string[] {
    return [...this.chains.entries()]
      .filter(
        ([c, r]) => !isBuiltin(this.name, c) || r.top.length + r.bottom.length > 0 || this.policies.has(c),
      )
      .map(([c]) => c);
  }

  hasChain(chain: string): boolean {
    return isBuiltin(this.name, chain) || this.chains.has(chain);
  }

  addChain(chain: string): void {
    validateChainName(chain);
    if (this.hasChain(chain)) return;
    this.chains.set(chain, { top: [], bottom: [] });
    this.hooks.dirty(this.family, this.name, chain);
  }

  /** Removes the chain, its rules and every rule that jumps to it (a cascade, as Neutron's). */
  removeChain(chain: string): void {
    if (isBuiltin(this.name, chain))
      throw new NetfilterError("EINVAL", `chain: ${chain} is built in; emptyChain empties it`);
    if (!this.chains.delete(chain)) return;
    this.hooks.dirty(this.family, this.name, chain);
    for (const [c, rules] of this.chains) {
      const keep = (r: ManagedRule): boolean => !r.translated.jumps.includes(chain);
      if (rules.top.every(keep) && rules.bottom.every(keep)) continue;
      this.chains.set(c, { top: rules.top.filter(keep), bottom: rules.bottom.filter(keep) });
      this.hooks.dirty(this.family, this.name, c);
    }
  }

  emptyChain(chain: string): void {
    const rules = this.chains.get(chain);
    if (!rules || rules.top.length + rules.bottom.length === 0) return;
    this.chains.set(chain, { top: [], bottom: [] });
    this.hooks.dirty(this.family, this.name, chain);
  }

  /** Sets the policy of a built-in chain (nftables backend only: on iptables it is the system's). */
  setPolicy(chain: BuiltinChain, policy: Verdict | undefined): void {
    if (!isBuiltin(this.name, chain))
      throw new NetfilterError("EINVAL", `chain: ${String(chain)} is not a built-in chain of ${this.name}`);
    if (this.policies.get(chain) === policy) return;
    if (policy === undefined) this.policies.delete(chain);
    else this.policies.set(chain, policy);
    if (!this.chains.has(chain)) this.chains.set(chain, { top: [], bottom: [] });
    this.hooks.dirty(this.family, this.name, chain);
  }

  policy(chain: string): Verdict | undefined {
    return this.policies.get(chain as BuiltinChain);
  }

  addRule(chain: string, rule: string, opts: RuleOptions = {}): ManagedRule {
    if (!this.hasChain(chain))
      throw new NetfilterError(
        "ENOCHAIN",
        `chain: ${chain} is not a chain of table ${this.name} (addChain first)`,
      );
    const r = this.makeRule(chain, rule, opts);
    let rules = this.chains.get(chain);
    if (!rules) this.chains.set(chain, (rules = { top: [], bottom: [] }));
    (r.top ? rules.top : rules.bottom).push(r);
    this.hooks.dirty(this.family, this.name, chain);
    return r;
  }

  /** Removes the first rule equal to this one (chain, text, top); false if there is none. */
  removeRule(chain: string, rule: string, opts: { top?: boolean } = {}): boolean {
    const rules = this.chains.get(chain);
    if (!rules) return false;
    const list = opts.top ? rules.top : rules.bottom;
    const i = list.findIndex((r) => r.rule === rule);
    if (i < 0) return false;
    list.splice(i, 1);
    this.hooks.dirty(this.family, this.name, chain);
    return true;
  }

  clearRulesByTag(tag: string): void {
    if (!tag) return;
    for (const [c, rules] of this.chains) {
      const keep = (r: ManagedRule): boolean => r.tag !== tag;
      if (rules.top.every(keep) && rules.bottom.every(keep)) continue;
      this.chains.set(c, { top: rules.top.filter(keep), bottom: rules.bottom.filter(keep) });
      this.hooks.dirty(this.family, this.name, c);
    }
  }

  /** The rules of a chain in kernel order: top rules, then the others. */
  getChain(chain: string): ManagedRule[] {
    const rules = this.chains.get(chain);
    return rules ? [...rules.top, ...rules.bottom] : [];
  }

  isChainEmpty(chain: string): boolean {
    return this.getChain(chain).length === 0;
  }

  /** Whether any rule matches the set. */
  usesSet(name: string): boolean {
    for (const rules of this.chains.values())
      for (const r of [...rules.top, ...rules.bottom]) if (r.translated.sets.includes(name)) return true;
    return false;
  }

  private makeRule(chain: string, rule: string, opts: RuleOptions): ManagedRule {
    const translated = translateRule(rule, {
      family: this.family,
      table: this.name,
      chain,
      chainRef: (c) =>
        this.chains.has(c) && !isBuiltin(this.name, c) ? nftChainName(this.name, c) : undefined,
      setType: (s) => this.hooks.setType(this.family, s),
    });
    const comments = [...(opts.comment ? [opts.comment] : []), ...translated.comments];
    const identity = translated.args.map((a) =>
      typeof a === "string" ? a : "chain" in a ? `$${a.chain}` : `@${a.set}`,
    );
    const key = ruleKey([this.name, chain, String(opts.top === true), opts.comment ?? "", ...identity]);
    if (/["\\]/.test(opts.comment ?? "") || Buffer.byteLength(opts.comment ?? "") > 256 - 17)
      throw new NetfilterError(
        "EINVAL",
        `comment: rule "${rule}": a comment holds at most 239 bytes and no " or \\`,
      );
    const kernelComment = nftComment(comments, key);
    const r: ManagedRule = { chain, rule, top: opts.top === true, translated, key, kernelComment };
    if (opts.tag !== undefined) r.tag = opts.tag;
    if (opts.comment !== undefined) r.comment = opts.comment;
    return r;
  }
}

/** nft keeps 128 bytes of comment, without ; # { } (the library refuses them): the marker always fits. */
const NFT_COMMENT_ROOM = 128 - MARKER_PREFIX.length - 12 - 1;
function nftComment(parts: readonly string[], key: string): string {
  let text = parts.join(" | ").replace(/[;#{}]/g, ",");
  if (Buffer.byteLength(text) > NFT_COMMENT_ROOM) {
    while (Buffer.byteLength(text) > NFT_COMMENT_ROOM - 3) text = text.slice(0, -1);
    text += "...";
  }
  return markedComment(text || undefined, key);
}
