/**
 * The iptables backend: upstream's chains and rules exactly, so a container added by upstream's
 * firewall plugin is deleted by ours and the other way round.
 *
 *   filter FORWARD:        -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD  (first)
 *   filter CNI-FORWARD:    -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN  (first)
 *                          -d IP/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
 *                          -s IP/32 -j ACCEPT
 *   CNI-ADMIN:             the operator's; created when missing, never flushed.
 *   CNI-ISOLATION-STAGE-1/2 for ingressPolicy same-bridge and isolated, jumped first from FORWARD.
 *
 * Each change reads the table once (iptables-save) and applies what is missing in one
 * iptables-restore --noflush. Chains are created with `iptables -N`, never declared in restore
 * input, because declaring an existing chain there flushes it (the admin chain is the operator's).
 * Our own calls are serialised by a lock file so concurrent ADDs do not append a rule twice.
 *
 * Without reading (docs/firewall.md): an ADD with no record of the attachment checks the shared
 * jumps (`-C`) and appends its accepts in one batch; a DEL deletes exactly the accepts of its
 * record and prevResult in one batch. A batch fails whole when the host is not so (a chain or
 * jump missing, an accept already gone): then the table is read and the change computed from it.
 */
import { withFlock } from "../../../src/cni/index.js";
import { nftOwnerHash, type Attachment } from "../../../src/cni/attachment.js";
import {
  NO_EFFECTS,
  staleOwners,
  type AttachmentRecords,
  type Effects,
  type HostStateBackend,
} from "../../../src/hoststate/index.js";
import {
  checkLine,
  deleteLine,
  hasRule,
  insertFirst,
  quoteArg,
  IptablesError,
  restoreOrFallback,
  type IpFamily,
  type IptablesRunner,
  type SavedTable,
} from "../../../src/iptables/iptables.js";
import {
  familyOf,
  hostPrefix,
  isolationOf,
  recordedAddresses,
  type FirewallSpec,
  type IsolationSpec,
} from "./firewall_backend.js";
import type { HostForwardRules } from "./firewall_host_forward.js";

export const PRIV_CHAIN = "CNI-FORWARD";
export const STAGE1 = "CNI-ISOLATION-STAGE-1";
export const STAGE2 = "CNI-ISOLATION-STAGE-2";
export const LOCK_FILE = "/run/cni-nft-firewall.lock";
/** This backend's records (src/hoststate/records.ts): the addresses an ADD is about to accept. */
export const RECORDS = "firewall-iptables";

const c = (text: string): string => `-m comment --comment ${quoteArg(text)}`;

/** The rules as iptables-save prints them (`-A CHAIN …`). */
export const rules = {
  forwardJump: `-A FORWARD ${c("CNI firewall plugin rules")} -j ${PRIV_CHAIN}`,
  adminJump: (admin: string): string =>
    `-A ${PRIV_CHAIN} ${c("CNI firewall plugin admin overrides")} -j ${admin}`,
  perAddress: (ip: string): string[] => [
    `-A ${PRIV_CHAIN} -d ${ip} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    `-A ${PRIV_CHAIN} -s ${ip} -j ACCEPT`,
  ],
  isolationJump: `-A FORWARD ${c("CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)")} -j ${STAGE1}`,
  stage1Bridge: (br: string, isolated: boolean): string =>
    `-A ${STAGE1} -i ${br} ! -o ${br} ${c(`CNI firewall plugin rules (ingressPolicy: ${isolated ? "isolated" : "same-bridge"})`)} -j ${STAGE2}`,
  stage1Drop: (br: string): string =>
    `-A ${STAGE1} -i ${br} -o ${br} ${c("CNI firewall plugin rules (ingressPolicy: isolated)")} -j DROP`,
  stage1Return: `-A ${STAGE1} ${c("CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)")} -j RETURN`,
  stage2Drop: (br: string): string =>
    `-A ${STAGE2} -o ${br} ${c("CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)")} -j DROP`,
  stage2Return: `-A ${STAGE2} ${c("CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)")} -j RETURN`,
};

function familiesOf(c: FirewallSpec): IpFamily[] {
  return ([4, 6] as const).filter((f) => c.addresses.some((a) => familyOf(a) === f));
}

/** Rules for one bridge's isolation: inserted at the top (the drop of `isolated` ends up first, as upstream), then appended. */
function isolationRules(bridge: string, isolated: boolean): { first: string[]; last: string[] } {
  return {
    first: [
      rules.stage1Bridge(bridge, isolated),
      ...(isolated ? [rules.stage1Drop(bridge)] : []),
      rules.stage2Drop(bridge),
    ],
    last: [rules.stage1Return, rules.stage2Return],
  };
}

/**
 * Upstream's iptables layout, through an iptables runner. Each change is one read and one
 * restore under our lock; chains are created with `iptables -N`, never declared in restore
 * input, because declaring an existing chain there flushes it (the admin chain is the operator's).
 */
export class FilterTable {
  constructor(readonly ipt: IptablesRunner) {}

  async ensureChains(family: IpFamily, saved: SavedTable, chains: string[]): Promise<void> {
    for (const chain of chains) {
      if (saved.chains.has(chain)) continue;
      await this.ipt.newChain(family, "filter", chain);
      saved.chains.add(chain);
    }
  }

  /**
   * Under our lock: `fast` when given (a batch that needs no read), and when it fails or is not
   * given, one read and one restore of the lines `plan` returns.
   */
  async change(
    family: IpFamily,
    plan: (saved: SavedTable) => Promise<string[]> | string[],
    fast?: readonly string[],
  ): Promise<void> {
    await withFlock(LOCK_FILE, () =>
      restoreOrFallback(this.ipt, family, "filter", fast, async () => {
        const saved = await this.ipt.save(family, "filter");
        await this.ipt.restore(family, "filter", await plan(saved));
      }),
    );
  }

  /** Whether every one of `lines` is there: one batch of `-C`, which fails whole when one is missing. */
  async holdsAll(family: IpFamily, lines: readonly string[]): Promise<boolean> {
    if (!lines.length) return true;
    try {
      await this.ipt.restore(family, "filter", lines.map(checkLine));
      return true;
    } catch (e) {
      if (e instanceof IptablesError) return false;
      throw e;
    }
  }

  async setUpIsolation(s: IsolationSpec): Promise<void> {
    const { first, last } = isolationRules(s.bridge, s.isolated);
    // Once the bridge's rules are there (every ADD but its first), one batch of checks says so.
    const checks = [rules.isolationJump, ...first, ...last].map(checkLine);
    for (const family of s.families)
      await this.change(
        family,
        async (saved) => {
          await this.ensureChains(family, saved, [STAGE1, STAGE2]);
          const have = new Set(saved.rules);
          const { first, last } = isolationRules(s.bridge, s.isolated);
          const lines: string[] = [];
          if (!have.has(rules.isolationJump)) lines.push(insertFirst(rules.isolationJump));
          for (const r of first) if (!have.has(r)) lines.push(insertFirst(r));
          for (const r of last) if (!have.has(r)) lines.push(r);
          return lines;
        },
        checks,
      );
  }

  /** The bridge's own isolation rules (either policy) in the saved table. */
  private static bridgeRules(saved: SavedTable, bridge: string): string[] {
    const mine = new Set([...isolationRules(bridge, true).first, ...isolationRules(bridge, false).first]);
    return saved.rules.filter((r) => mine.has(r));
  }

  async holdsIsolation(s: IsolationSpec): Promise<boolean> {
    for (const family of s.families.filter((f) => this.ipt.available(f)))
      if (FilterTable.bridgeRules(await this.ipt.save(family, "filter"), s.bridge).length) return true;
    return false;
  }

  /**
   * The bridge's isolation rules; the chains and FORWARD's jump too once no bridge is left in
   * them (what upstream never removes, and a move to nftables must, or it stays for good).
   */
  async removeIsolation(s: IsolationSpec): Promise<void> {
    for (const family of s.families.filter((f) => this.ipt.available(f)))
      await this.change(family, (saved) => {
        const gone = FilterTable.bridgeRules(saved, s.bridge);
        const lines = gone.map(deleteLine);
        const left = saved.rules.filter(
          (r) => (r.startsWith(`-A ${STAGE1} `) || r.startsWith(`-A ${STAGE2} `)) && !gone.includes(r),
        );
        if (left.every((r) => r === rules.stage1Return || r === rules.stage2Return)) {
          lines.push(...left.map(deleteLine));
          if (saved.rules.includes(rules.isolationJump)) lines.push(deleteLine(rules.isolationJump));
          for (const chain of [STAGE1, STAGE2]) if (saved.chains.has(chain)) lines.push(`-X ${chain}`);
        }
        return lines;
      });
  }

  async checkIsolation(s: IsolationSpec): Promise<string[]> {
    const missing: string[] = [];
    for (const family of s.families) {
      const saved = await this.ipt.save(family, "filter");
      const have = new Set(saved.rules);
      const { first, last } = isolationRules(s.bridge, s.isolated);
      for (const r of [rules.isolationJump, ...first, ...last])
        if (!have.has(r)) missing.push(`${family === 4 ? "iptables" : "ip6tables"} rule ${r}`);
    }
    return missing;
  }
}

export class IptablesFirewall implements HostStateBackend<FirewallSpec> {
  readonly component = "firewall";
  readonly name = "iptables";
  private readonly filter: FilterTable;
  /**
   * `hostForward`: the attachment's accepts in the host's own nftables forward chain, when the
   * config asks for it (its rules in FORWARD already come before an iptables policy).
   */
  constructor(
    private readonly ipt: IptablesRunner,
    private readonly records: AttachmentRecords,
    private readonly hostForward?: HostForwardRules,
  ) {
    this.filter = new FilterTable(ipt);
  }

  present(): boolean {
    return this.ipt.available(4);
  }

  /**
   * The addresses are recorded before a rule is written: upstream's accept rules carry no owner,
   * so after a kill DEL without prevResult and GC find them only through the record.
   */
  async setUp(a: Attachment, conf: FirewallSpec): Promise<Effects> {
    // First: a host chain the config names but the host lacks then changes nothing.
    await this.hostForward?.setUpAddresses(a, conf.addresses);
    const before = recordedAddresses(this.records.read(nftOwnerHash(a)));
    if (conf.addresses.length) {
      this.records.write(nftOwnerHash(a), {
        addresses: [...new Set([...before, ...conf.addresses])],
      });
    }
    for (const family of familiesOf(conf)) {
      const mine = conf.addresses.filter((a) => familyOf(a) === family).flatMap(rules.perAddress);
      const admin = rules.adminJump(conf.adminChain);
      // No record before this ADD: none of its accepts is ours, so they are appended without a
      // read while FORWARD's jump is there (FORWARD listed alone: a flush takes it); the batch
      // fails while CNI-FORWARD is missing. No `-C` of the admin jump (in a batch one makes
      // iptables-nft load every rule of the table, docs/performance.md), but one of the accepts:
      // upstream's carry no owner, and when its plugin ADDed this container first they are there
      // already (it appends only what is missing), so appending would leave a copy nobody removes.
      let fast: string[] | undefined;
      if (before.length === 0 && (await hasRule(this.ipt, family, "filter", rules.forwardJump))) {
        if (await this.filter.holdsAll(family, mine)) continue;
        fast = mine;
      }
      await this.filter.change(
        family,
        async (saved) => {
          await this.filter.ensureChains(family, saved, [PRIV_CHAIN, conf.adminChain]);
          const have = new Set(saved.rules);
          const lines: string[] = [];
          if (!have.has(rules.forwardJump)) lines.push(insertFirst(rules.forwardJump));
          if (!have.has(admin)) lines.push(insertFirst(admin));
          for (const r of mine) if (!have.has(r)) lines.push(r);
          return lines;
        },
        fast,
      );
    }
    const isolation = isolationOf(conf);
    if (isolation) await this.filter.setUpIsolation(isolation);
    return NO_EFFECTS;
  }

  /** The accept rules of every address prevResult or the record names; the record goes last. */
  async remove(a: Attachment, conf?: FirewallSpec): Promise<Effects> {
    // The host chain's accepts carry their owner: found without prevResult.
    await this.hostForward?.removeAddresses(a);
    const recorded = recordedAddresses(this.records.read(nftOwnerHash(a)));
    await this.removeAddresses([...(conf?.addresses ?? []), ...recorded]);
    this.records.remove(nftOwnerHash(a));
    return NO_EFFECTS;
  }

  private async removeAddresses(addresses: readonly string[]): Promise<void> {
    // A record is ours, but it is a file: its addresses pass the same parser as prevResult's.
    const all = [...new Set(addresses.map((ip) => hostPrefix(ip)))];
    for (const family of ([4, 6] as const).filter((f) => this.ipt.available(f))) {
      const mine = new Set(all.filter((ip) => familyOf(ip) === family).flatMap(rules.perAddress));
      if (mine.size === 0) continue;
      // One copy of each, as ADD wrote them; when one is gone the batch fails and a read finds every copy.
      await this.filter.change(
        family,
        (saved) => saved.rules.filter((r) => mine.has(r)).map(deleteLine),
        [...mine].map(deleteLine),
      );
    }
  }

  /** An accept rule of one of its addresses (they carry no owner: upstream's layout), or a hostForward accept. */
  async holds(a: Attachment, conf: FirewallSpec): Promise<boolean> {
    for (const family of familiesOf(conf).filter((f) => this.ipt.available(f))) {
      const mine = new Set(conf.addresses.filter((x) => familyOf(x) === family).flatMap(rules.perAddress));
      if ((await this.ipt.save(family, "filter")).rules.some((r) => mine.has(r))) return true;
    }
    return (await this.hostForward?.holdsAddresses(a)) ?? false;
  }

  async check(a: Attachment, conf: FirewallSpec): Promise<string[]> {
    const missing: string[] = [];
    if (this.hostForward) missing.push(...(await this.hostForward.missingAddresses(a, conf.addresses)));
    for (const family of familiesOf(conf)) {
      const saved = await this.ipt.save(family, "filter");
      const v = family === 4 ? "iptables" : "ip6tables";
      for (const chain of [PRIV_CHAIN, conf.adminChain])
        if (!saved.chains.has(chain)) missing.push(`${v} chain ${chain}`);
      const have = new Set(saved.rules);
      const want = [
        rules.forwardJump,
        rules.adminJump(conf.adminChain),
        ...conf.addresses.filter((a) => familyOf(a) === family).flatMap(rules.perAddress),
      ];
      for (const r of want) if (!have.has(r)) missing.push(`${v} rule ${r}`);
    }
    const isolation = isolationOf(conf);
    if (isolation) missing.push(...(await this.filter.checkIsolation(isolation)));
    return missing;
  }

  /** From the records (the rules carry no container identity): every attachment not valid goes. */
  async gc(network: string, valid: readonly Attachment[]): Promise<Effects> {
    await this.hostForward?.gcAddresses(network, valid);
    const stale = staleOwners(this.records, network, valid);
    await this.removeAddresses(stale.flatMap((owner) => recordedAddresses(this.records.read(owner))));
    for (const owner of stale) this.records.remove(owner);
    return NO_EFFECTS;
  }
}

/**
 * Bridge isolation alone: for the firewalld backend (firewalld has no notion of it; as upstream,
 * iptables does it), and for `cni-nft migrate`, which moves it. The bridge's rules stay when a
 * container goes (other containers may use it); only a move removes them.
 */
export class IptablesIsolation implements HostStateBackend<IsolationSpec> {
  readonly component = "isolation";
  readonly name = "iptables";
  private readonly filter: FilterTable;
  constructor(private readonly ipt: IptablesRunner) {
    this.filter = new FilterTable(ipt);
  }

  present(): boolean {
    return this.ipt.available(4);
  }

  async setUp(_a: Attachment, s: IsolationSpec): Promise<Effects> {
    await this.filter.setUpIsolation(s);
    return NO_EFFECTS;
  }

  check(_a: Attachment, s: IsolationSpec): Promise<string[]> {
    return this.filter.checkIsolation(s);
  }

  holds(_a: Attachment, s: IsolationSpec): Promise<boolean> {
    return this.filter.holdsIsolation(s);
  }

  /**
   * The bridge's isolation, for a move to another framework (the plugin's DEL never calls it:
   * other containers may use the bridge). Without a spec there is no bridge to name.
   */
  async remove(_a: Attachment, s?: IsolationSpec): Promise<Effects> {
    if (s) await this.filter.removeIsolation(s);
    return NO_EFFECTS;
  }

  gc(): Promise<Effects> {
    return Promise.resolve(NO_EFFECTS);
  }
}
