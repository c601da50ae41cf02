/**
 * The iptables backend: upstream's layout (per container a `CNI-<hash>` chain in `nat` that
 * accepts the container's subnet and masquerades the rest but multicast, jumped to from
 * POSTROUTING with the comment `name: "<net>" id: "<id>"`). ADD is one iptables-restore per IP
 * family; DEL reads the table once and removes every copy of the jump, then the chain.
 */
import { addressOf, familyOf, subnetOf } from "../address/index.js";
import {
  iptablesChainName,
  iptablesComment,
  type Attachment,
  type IpMasqBackend,
  type MasqInstance,
  type MasqSetup,
} from "./ipmasq.js";
import {
  deleteLine,
  onPath,
  quoteArg,
  restoreTable,
  saveTable,
  type IpFamily,
} from "../iptables/iptables.js";

export class IptablesMasq implements IpMasqBackend {
  readonly name = "iptables";

  async setup(s: MasqSetup): Promise<void> {
    const chain = iptablesChainName(s.network, s.containerId);
    const comment = `-m comment --comment ${quoteArg(iptablesComment(s.network, s.containerId))}`;
    for (const family of [4, 6] as const) {
      const addrs = s.addresses.filter((a) => familyOf(a) === family);
      if (addrs.length === 0) continue;
      const multicast = family === 4 ? "224.0.0.0/4" : "ff00::/8";
      const host = family === 4 ? "32" : "128";
      const lines = [`:${chain} - [0:0]`];
      for (const a of addrs) lines.push(`-A ${chain} -d ${subnetOf(a)} ${comment} -j ACCEPT`);
      lines.push(`-A ${chain} ! -d ${multicast} ${comment} -j MASQUERADE`);
      for (const a of addrs) lines.push(`-A POSTROUTING -s ${addressOf(a)}/${host} ${comment} -j ${chain}`);
      await restoreTable(family, "nat", lines);
    }
  }

  /** Jump rules from POSTROUTING to a chain, and whether the chain exists. */
  private async find(
    family: IpFamily,
    chain: string,
  ): Promise<{ jumps: string[]; exists: boolean; rules: string[] }> {
    const saved = await saveTable(family, "nat");
    return {
      jumps: saved.rules.filter((r) => r.startsWith("-A POSTROUTING ") && r.endsWith(` -j ${chain}`)),
      exists: saved.chains.has(chain),
      rules: saved.rules,
    };
  }

  private async removeChain(family: IpFamily, chain: string): Promise<void> {
    const { jumps, exists } = await this.find(family, chain);
    const lines = jumps.map(deleteLine);
    if (exists) lines.push(`-F ${chain}`, `-X ${chain}`);
    await restoreTable(family, "nat", lines);
  }

  async teardown(i: MasqInstance): Promise<void> {
    const chain = iptablesChainName(i.network, i.containerId);
    await Promise.all(([4, 6] as const).filter(available).map((f) => this.removeChain(f, chain)));
  }

  /**
   * Upstream's iptables backend has no GC; the comment names network and container, so ours
   * removes the chains of containers of this network that are not in the valid list.
   */
  async gc(network: string, valid: Attachment[]): Promise<void> {
    const keep = new Set(valid.map((a) => iptablesChainName(network, a.containerId)));
    const marker = `--comment ${quoteArg(iptablesComment(network, "")).slice(0, -3)}`; // name: "<net>" id: "
    for (const family of ([4, 6] as const).filter(available)) {
      const saved = await saveTable(family, "nat");
      const stale = new Set<string>();
      for (const r of saved.rules) {
        const m = / -j (CNI-[0-9a-f]{24})$/.exec(r);
        if (r.startsWith("-A POSTROUTING ") && m && r.includes(marker) && !keep.has(m[1]!)) stale.add(m[1]!);
      }
      const lines: string[] = [];
      for (const chain of stale) {
        lines.push(
          ...saved.rules
            .filter((r) => r.startsWith("-A POSTROUTING ") && r.endsWith(` -j ${chain}`))
            .map(deleteLine),
        );
        if (saved.chains.has(chain)) lines.push(`-F ${chain}`, `-X ${chain}`);
      }
      await restoreTable(family, "nat", lines);
    }
  }

  async check(s: MasqSetup): Promise<string[]> {
    const chain = iptablesChainName(s.network, s.containerId);
    const missing: string[] = [];
    for (const family of [4, 6] as const) {
      const addrs = s.addresses.filter((a) => familyOf(a) === family);
      if (addrs.length === 0) continue;
      const { jumps, exists, rules } = await this.find(family, chain);
      if (!exists || !rules.some((r) => r.startsWith(`-A ${chain} `) && r.includes("MASQUERADE")))
        missing.push(
          `${family === 4 ? "iptables" : "ip6tables"} chain ${chain} with a MASQUERADE rule in table nat`,
        );
      for (const a of addrs)
        if (!jumps.some((j) => j.includes(` -s ${addressOf(a)}/`)))
          missing.push(`POSTROUTING jump to ${chain} for ${addressOf(a)}`);
    }
    return missing;
  }
}

function available(family: IpFamily): boolean {
  return onPath(family === 4 ? "iptables-restore" : "ip6tables-restore");
}
