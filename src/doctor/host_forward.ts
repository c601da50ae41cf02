/**
 * hostForward's rules in the host firewall's own chains (docs/firewall.md, "hostForward") that no
 * network's config asks for any more: DEL and GC remove only what the config names, so taking
 * `hostForward` out of a config (or the config away) while containers use it leaves the accept
 * in the host's chain for good. Each rule names its network's hash in its comment; a rule is
 * stale when no config of that network has a firewall whose hostForward names that chain (the
 * nftables rules) or iptables (the CNI-FORWARD mark accept).
 */
import * as v from "valibot";
import type { NetworkConfigList } from "../cli/libcni.js";
import { nftNetworkHash } from "../cni/attachment.js";
import { onPath } from "../iptables/iptables.js";
import { systemRunner } from "../process/index.js";
import { hostForwardSchema, type HostForward } from "../../plugins/meta/firewall/firewall_backend.js";
import type { Finding } from "./findings.js";

/** The network accept (nftables backend) and a container's accepts (iptables backend). */
const NETWORK_RULE = /^([0-9a-f]{16}), hostForward mark/;
const CONTAINER_RULE = /^([0-9a-f]{16})-[0-9a-f]{16}, net: /;
const IPT_RULE = /^-A CNI-FORWARD .*--comment "([0-9a-f]{16}), hostForward mark/;

/** Tables of cni-nft and of upstream's backends: their comments are theirs, not hostForward's. */
const OWN_TABLE = /^(cni_nft_|cni_plugins_|cni_hostport$)/;

/** Each network's name and the hostForward of its firewall plugins, by network hash. */
function wanted(lists: readonly NetworkConfigList[]): Map<string, { name: string; hf: HostForward[] }> {
  const out = new Map<string, { name: string; hf: HostForward[] }>();
  for (const list of lists) {
    const entry = out.get(nftNetworkHash(list.name)) ?? { name: list.name, hf: [] };
    for (const p of list.plugins) {
      if (p["type"] !== "firewall") continue;
      const r = v.safeParse(hostForwardSchema, p["hostForward"]);
      if (r.success && r.output) entry.hf.push(r.output);
    }
    out.set(nftNetworkHash(list.name), entry);
  }
  return out;
}

interface NftRule {
  family: string;
  table: string;
  chain: string;
  handle: number;
  comment?: string;
}

async function nftRules(): Promise<NftRule[]> {
  const r = await systemRunner.run({ argv: ["nft", "-j", "list", "ruleset"] });
  if (r.code !== 0) return [];
  const items = (JSON.parse(r.stdout) as { nftables?: Array<{ rule?: NftRule }> }).nftables ?? [];
  return items.flatMap((i) => (i.rule ? [i.rule] : []));
}

/** Why the network's configs do not keep the rule, or undefined when one asks for it. */
function unwanted(
  net: { name: string; hf: HostForward[] } | undefined,
  asks: (hf: HostForward) => boolean,
): string | undefined {
  if (!net) return "no network config here names its network";
  if (net.hf.some(asks)) return undefined;
  return `network ${net.name}'s config no longer asks for it`;
}

export async function staleHostForward(out: Finding[], lists: readonly NetworkConfigList[]): Promise<void> {
  const nets = wanted(lists);
  if (onPath("nft"))
    for (const r of await nftRules()) {
      if (OWN_TABLE.test(r.table) || r.comment === undefined) continue;
      const hash = (NETWORK_RULE.exec(r.comment) ?? CONTAINER_RULE.exec(r.comment))?.[1];
      if (hash === undefined) continue;
      const where = `${r.family} ${r.table} ${r.chain}`;
      const why = unwanted(nets.get(hash), (hf) => {
        const n = hf.nftables;
        return n !== undefined && `${n.family} ${n.table} ${n.chain}` === where;
      });
      if (why)
        out.push({
          kind: "host-forward-leftover",
          message: `nftables chain ${where} holds hostForward's accept "${r.comment}", but ${why}`,
          fix: `nft delete rule ${where} handle ${r.handle} (or put the network's hostForward back in its firewall config)`,
        });
    }
  for (const family of [4, 6] as const) {
    const tool = family === 4 ? "iptables" : "ip6tables";
    if (!onPath(`${tool}-save`)) continue;
    const saved = await systemRunner.run({ argv: [`${tool}-save`, "-t", "filter"] });
    if (saved.code !== 0) continue;
    for (const line of saved.stdout.split("\n")) {
      const hash = IPT_RULE.exec(line)?.[1];
      if (hash === undefined) continue;
      const why = unwanted(nets.get(hash), (hf) => hf.iptables);
      if (why)
        out.push({
          kind: "host-forward-leftover",
          message: `${tool} rule ${line} is hostForward's accept, but ${why}`,
          fix: `${tool} -t filter ${line.replace(/^-A /, "-D ")} (or put the network's hostForward back in its firewall config)`,
        });
    }
  }
}
