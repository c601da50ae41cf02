/**
 * Upstream's nftables portmap layout, read (and removed) but never written: tables `ip
 * cni_hostport` and `ip6 cni_hostport`, one rule per mapping in chain `hostports` (and the older
 * `hostip_hostports`) and one per masquerade in chain `masquerading`, each rule's comment the
 * container ID (upstream's mappings carry no network or interface). A host that ran upstream's
 * portmap with `"backend": "nftables"` has its containers there; cni-nft's CHECK accepts them,
 * its DEL removes them, and `cni-nft migrate` moves them to cni-nft's own layout.
 */
import { isNotFound, type Interface, type Rule } from "../../../src/nftables/index.js";
import { mappingsFor, type Family, type PortMapConf } from "./config.js";

export const UPSTREAM_TABLE = "cni_hostport";
const CHAINS = ["hostports", "hostip_hostports", "masquerading"] as const;
type UpstreamChain = (typeof CHAINS)[number];

export interface UpstreamPortmapRule {
  family: Family;
  chain: UpstreamChain;
  handle: number;
  /** The rule as nft prints it, e.g. `tcp dport 8080 dnat to 10.9.0.5:80`. */
  rule: string;
  /** The container ID. */
  containerId: string;
}

/** Upstream's table of a family, through any Interface of the same host. */
function table(nft: Interface, family: Family): Interface {
  return nft.forTable(family === 4 ? "ip" : "ip6", UPSTREAM_TABLE);
}

async function tableRules(nft: Interface): Promise<Map<string, Rule[]>> {
  try {
    return (await nft.listTable({ text: true })).rules;
  } catch (e) {
    if (isNotFound(e)) return new Map();
    throw e;
  }
}

/** Whether upstream's table of a family exists: one JSON run that fails fast when it does not. */
async function present(nft: Interface, family: Family): Promise<boolean> {
  try {
    await table(nft, family).listTable();
    return true;
  } catch (e) {
    if (isNotFound(e)) return false;
    throw e;
  }
}

/**
 * Every rule of upstream's layout that names a container, optionally only those of one
 * container. Each table is looked for by name (`nft list tables` costs O(every element of every
 * table) in nft 1.0.6: 0.9 s with 5,000 containers in ours); only a host that has them pays for
 * reading them.
 */
export async function readUpstreamPortmap(
  nft: Interface,
  containerId?: string,
): Promise<UpstreamPortmapRule[]> {
  const families = [4, 6] as const;
  const found = await Promise.all(families.map((f) => present(nft, f)));
  const here = families.filter((_, i) => found[i]);
  const lists = await Promise.all(
    here.map(async (family) => {
      const rules = await tableRules(table(nft, family));
      return CHAINS.flatMap((chain) =>
        (rules.get(chain) ?? []).flatMap((r): UpstreamPortmapRule[] =>
          r.comment !== undefined &&
          r.handle !== undefined &&
          (containerId === undefined || r.comment === containerId)
            ? [{ family, chain, handle: r.handle, rule: r.rule, containerId: r.comment }]
            : [],
        ),
      );
    }),
  );
  return lists.flat();
}

/**
 * What upstream's own CHECK requires, per container address: at least one `hostports` rule per
 * mapping of that family and the masquerade rules (two for IPv4 without masqAll, else one), all
 * commented with the container ID and aimed at the container's address.
 */
export function missingInUpstreamLayout(c: PortMapConf, rules: UpstreamPortmapRule[]): string[] {
  const missing: string[] = [];
  for (const ct of c.containers) {
    const mine = rules.filter((r) => r.family === ct.family && r.containerId === c.containerId);
    const target = ct.family === 4 ? `${ct.address}:` : `[${ct.address}]:`;
    const maps = mappingsFor(c, ct.family);
    const dnats = mine.filter((r) => r.chain !== "masquerading" && r.rule.includes(`dnat to ${target}`));
    for (const m of maps) {
      const want = `${m.protocol} dport ${m.hostPort} dnat to ${target}${m.containerPort}`;
      if (!dnats.some((r) => r.rule.endsWith(want)))
        missing.push(`${want} in table ${ct.family === 4 ? "ip" : "ip6"} ${UPSTREAM_TABLE}`);
    }
    if (c.snat && maps.length) {
      const ip = ct.family === 4 ? "ip" : "ip6";
      const masq = mine.filter(
        (r) => r.chain === "masquerading" && r.rule.includes(`${ip} daddr ${ct.address} masquerade`),
      );
      const need = ct.family === 4 && !c.masqAll ? 2 : 1;
      if (masq.length < need)
        missing.push(
          `masquerade rules for ${ct.address} in table ${ip} ${UPSTREAM_TABLE} chain masquerading`,
        );
    }
  }
  return missing;
}

/** Deletes the given rules (one nft run); rules already gone are not an error. */
export async function deleteUpstreamRules(
  nft: Interface,
  rules: UpstreamPortmapRule[],
  retry = true,
): Promise<void> {
  const txs = ([4, 6] as const).flatMap((family) => {
    const mine = rules.filter((r) => r.family === family);
    if (mine.length === 0) return [];
    const tx = table(nft, family).newTransaction();
    for (const r of mine) tx.delete({ kind: "rule", chain: r.chain, rule: "", handle: r.handle });
    return [tx];
  });
  if (txs.length === 0) return;
  try {
    await nft.runAll(txs);
  } catch (e) {
    if (!isNotFound(e) || !retry) throw e;
    // A concurrent DEL removed some of them first: delete, once, what is still there.
    const handles = new Set(rules.map((r) => `${r.family}/${r.handle}`));
    const still = (await readUpstreamPortmap(nft)).filter((r) => handles.has(`${r.family}/${r.handle}`));
    if (still.length) await deleteUpstreamRules(nft, still, false);
  }
}

/** UDP host ports among the given rules (for the conntrack flush after removing them). */
export function udpHostPorts(rules: UpstreamPortmapRule[]): number[] {
  return rules.flatMap((r) => {
    const m = /\budp dport (\d+) dnat to\b/.exec(r.rule);
    return m ? [Number(m[1])] : [];
  });
}
