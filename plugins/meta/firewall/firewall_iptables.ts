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
 */
import { withFlock, CniError, ErrorCode } from "../../../src/cni/index.js";
import { classifyMessage, systemRunner } from "../../../src/process/index.js";
import {
  deleteLine,
  onPath,
  quoteArg,
  restoreTable,
  saveTable,
  type IpFamily,
  type SavedTable,
} from "../../../src/iptables/iptables.js";
import {
  familyOf,
  type FirewallBackend,
  type FirewallConf,
  type IsolationBackend,
} from "./firewall_backend.js";

export const PRIV_CHAIN = "CNI-FORWARD";
export const STAGE1 = "CNI-ISOLATION-STAGE-1";
export const STAGE2 = "CNI-ISOLATION-STAGE-2";
export const LOCK_FILE = "/run/cni-nft-firewall.lock";

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

/** `-A CHAIN spec` → `-I CHAIN 1 spec`. */
const insertFirst = (saved: string): string => {
  const [, chain, spec] = /^-A (\S+) (.*)$/.exec(saved)!;
  return `-I ${chain} 1 ${spec}`;
};

function available(family: IpFamily): boolean {
  return onPath(family === 4 ? "iptables-restore" : "ip6tables-restore");
}

function familiesOf(c: FirewallConf): IpFamily[] {
  return ([4, 6] as const).filter((f) => c.addresses.some((a) => familyOf(a) === f));
}

async function ensureChains(family: IpFamily, saved: SavedTable, chains: string[]): Promise<void> {
  const tool = family === 4 ? "iptables" : "ip6tables";
  for (const chain of chains) {
    if (saved.chains.has(chain)) continue;
    const r = await systemRunner.run({ argv: [tool, "-w", "-t", "filter", "-N", chain] });
    if (r.code !== 0 && classifyMessage(r.stderr) !== "exists")
      throw new CniError(ErrorCode.Internal, `${tool} -N ${chain}: ${r.stderr.trim()}`);
    saved.chains.add(chain);
  }
}

/** One read and one restore under our lock: `plan` returns the lines to apply. */
async function change(
  family: IpFamily,
  plan: (saved: SavedTable) => Promise<string[]> | string[],
): Promise<void> {
  await withFlock(LOCK_FILE, async () => {
    const saved = await saveTable(family, "filter");
    await restoreTable(family, "filter", await plan(saved));
  });
}

export class IptablesFirewall implements FirewallBackend, IsolationBackend {
  readonly name = "iptables";

  async add(conf: FirewallConf): Promise<void> {
    for (const family of familiesOf(conf)) {
      const mine = conf.addresses.filter((a) => familyOf(a) === family).flatMap(rules.perAddress);
      await change(family, async (saved) => {
        await ensureChains(family, saved, [PRIV_CHAIN, conf.adminChain]);
        const have = new Set(saved.rules);
        const lines: string[] = [];
        if (!have.has(rules.forwardJump)) lines.push(insertFirst(rules.forwardJump));
        const admin = rules.adminJump(conf.adminChain);
        if (!have.has(admin)) lines.push(insertFirst(admin));
        for (const r of mine) if (!have.has(r)) lines.push(r);
        return lines;
      });
    }
    if (conf.ingressPolicy !== "open" && conf.bridge)
      await this.setupIsolation(conf.bridge, conf.ingressPolicy === "isolated", familiesOf(conf));
  }

  async del(conf: FirewallConf): Promise<void> {
    for (const family of familiesOf(conf).filter(available)) {
      const mine = new Set(conf.addresses.filter((a) => familyOf(a) === family).flatMap(rules.perAddress));
      await change(family, (saved) => saved.rules.filter((r) => mine.has(r)).map(deleteLine));
    }
  }

  async check(conf: FirewallConf): Promise<string[]> {
    const missing: string[] = [];
    for (const family of familiesOf(conf)) {
      const saved = await saveTable(family, "filter");
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
    if (conf.ingressPolicy !== "open" && conf.bridge)
      missing.push(
        ...(await this.checkIsolation(conf.bridge, conf.ingressPolicy === "isolated", familiesOf(conf))),
      );
    return missing;
  }

  /** The accept rules carry no container identity (upstream's layout), so there is nothing to collect. */
  gc(): Promise<void> {
    return Promise.resolve();
  }

  isolationRules(bridge: string, isolated: boolean): { first: string[]; last: string[] } {
    return {
      // Inserted at the top (in this order, so the drop of `isolated` ends up first, as upstream).
      first: [
        rules.stage1Bridge(bridge, isolated),
        ...(isolated ? [rules.stage1Drop(bridge)] : []),
        rules.stage2Drop(bridge),
      ],
      last: [rules.stage1Return, rules.stage2Return],
    };
  }

  async setupIsolation(
    bridge: string,
    isolated: boolean,
    families: IpFamily[],
    _mark?: number,
  ): Promise<void> {
    for (const family of families)
      await change(family, async (saved) => {
        await ensureChains(family, saved, [STAGE1, STAGE2]);
        const have = new Set(saved.rules);
        const { first, last } = this.isolationRules(bridge, isolated);
        const lines: string[] = [];
        if (!have.has(rules.isolationJump)) lines.push(insertFirst(rules.isolationJump));
        for (const r of first) if (!have.has(r)) lines.push(insertFirst(r));
        for (const r of last) if (!have.has(r)) lines.push(r);
        return lines;
      });
  }

  async checkIsolation(bridge: string, isolated: boolean, families: IpFamily[]): Promise<string[]> {
    const missing: string[] = [];
    for (const family of families) {
      const saved = await saveTable(family, "filter");
      const have = new Set(saved.rules);
      const { first, last } = this.isolationRules(bridge, isolated);
      for (const r of [rules.isolationJump, ...first, ...last])
        if (!have.has(r)) missing.push(`${family === 4 ? "iptables" : "ip6tables"} rule ${r}`);
    }
    return missing;
  }
}
