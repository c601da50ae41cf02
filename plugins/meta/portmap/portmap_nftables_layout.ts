/**
 * The layout of portmap's own nftables table, `inet cni_nft_portmap` (see portmap_nftables.ts):
 * its fixed skeleton, and the elements and chains one attachment should have.
 *
 * Every set is a hash of exact keys, so adding or deleting one container's elements costs the
 * same however many other containers are there (the interval set of the previous layout,
 * portmap_nftables_legacy.ts, made every delete cost O(elements) in the kernel), and no container
 * has a verdict element: the kernel validates every jump of every verdict map of the table on
 * each commit that adds a rule or a jump, so per-container jumps made every ADD O(containers)
 * (the layout before, portmap_nftables_v2.ts). Masquerade is an object map from the DNATed
 * destination (container address . protocol . port) to the counter of the container's subnet:
 * the subnet's own base chain at postrouting looks the destination up there (`counter name ...
 * map`, which ends the rule when the key is missing), and while an element names the counter,
 * nft refuses to delete it (EBUSY), which tells a DEL whether the subnet's chain is still used.
 * `owners` holds one element per element of a container, keyed by (owner tag . key tag): a DEL
 * deletes both in one transaction, which fails unless the element is still its own, so DEL never
 * needs to read.
 */
import { nftOwnerComment, nftOwnerHash, sha512Hex, type Attachment } from "../../../src/cni/attachment.js";
import { declareOwners, keyText, ownerElement } from "../../../src/hoststate/nft_owners.js";
import {
  concat,
  prefix,
  type Element,
  type SkeletonChain,
  type Transaction,
} from "../../../src/nftables/index.js";
import { mappingsFor, type Family, type Mapping, type PortMapConf } from "./config.js";

export const NFT_TABLE = "cni_nft_portmap";
export {
  keyOnly,
  keyText,
  ownerElement,
  ownerElementOf,
  valueText,
  OWNERS_SET,
} from "../../../src/hoststate/nft_owners.js";

const FAMILIES = [4, 6] as const;
const ipx = (f: Family): "ip" | "ip6" => (f === 4 ? "ip" : "ip6");
const addrType = (f: Family): string => (f === 4 ? "ipv4_addr" : "ipv6_addr");

/** Set and map names per family. */
export function names(f: Family): {
  dnatIp: string;
  dnatAny: string;
  guardIp: string;
  guardAny: string;
  /** Object map: destination : the subnet's counter (hairpin and localhost masquerade). */
  snat: string;
  /** Set of destinations whose every connection is masqueraded (masqAll). */
  snatAll: string;
} {
  return {
    dnatIp: `dnat_ip${f}`,
    dnatAny: `dnat_any${f}`,
    guardIp: `guard_ip${f}`,
    guardAny: `guard_any${f}`,
    snat: `snat_sub${f}`,
    snatAll: `snat_all${f}`,
  };
}

/**
 * The base chain (and its counter, of the same name) that masquerades hairpin and localhost
 * traffic to containers of `subnet`.
 */
export function snatChain(f: Family, subnet: string): string {
  return `snat_sub${f}-${sha512Hex(subnet).slice(0, 12)}`;
}

export function guardChain(a: Attachment, f: Family): string {
  return `guard${f}-${nftOwnerHash(a)}`;
}

export function staticTransaction(tx: Transaction): void {
  tx.add({ kind: "table", comment: "CNI portmap (cni-nft): host ports to containers, state in maps" });
  for (const f of FAMILIES) {
    const n = names(f);
    const a = addrType(f);
    tx.add({ kind: "map", name: n.dnatIp, type: `${a} . inet_proto . inet_service : ${a} . inet_service` });
    tx.add({ kind: "map", name: n.dnatAny, type: `inet_proto . inet_service : ${a} . inet_service` });
    tx.add({ kind: "map", name: n.guardIp, type: `${a} . inet_proto . inet_service : verdict` });
    tx.add({ kind: "map", name: n.guardAny, type: `inet_proto . inet_service : verdict` });
    tx.add({ kind: "map", name: n.snat, type: `${a} . inet_proto . inet_service : counter` });
    tx.add({ kind: "set", name: n.snatAll, type: `${a} . inet_proto . inet_service` });
  }
  declareOwners(tx);
  tx.add({ kind: "chain", name: "hostports" });
  for (const [chain, hook] of [
    ["prerouting", "prerouting"],
    ["output", "output"],
  ] as const)
    // nft names dstnat only for prerouting; -100 is its value, upstream's choice for output too.
    tx.add({ kind: "chain", name: chain, type: "nat", hook, priority: -100 });
  tx.add({ kind: "chain", name: "postrouting", type: "nat", hook: "postrouting", priority: "srcnat" });
  writeSkeletonRules(tx);
}

/** The rules of the skeleton's chains, in order: what CHECK compares and every ADD rewrites. */
export function skeletonRules(): SkeletonChain[] {
  const hostports = FAMILIES.flatMap((f) => {
    const n = names(f);
    const ip = ipx(f);
    const nfproto = f === 4 ? "ipv4" : "ipv6";
    return [
      `${ip} daddr . meta l4proto . th dport vmap @${n.guardIp}`,
      `dnat ${ip} to ${ip} daddr . meta l4proto . th dport map @${n.dnatIp}`,
      `meta nfproto ${nfproto} meta l4proto . th dport vmap @${n.guardAny}`,
      `meta nfproto ${nfproto} dnat ${ip} to meta l4proto . th dport map @${n.dnatAny}`,
    ];
  });
  const snat = FAMILIES.map(
    (f) => `ct status dnat ${ipx(f)} daddr . meta l4proto . th dport @${names(f).snatAll} masquerade`,
  );
  return [
    { chain: "hostports", rules: hostports },
    { chain: "prerouting", rules: ["fib daddr type local jump hostports"] },
    { chain: "output", rules: ["fib daddr type local jump hostports"] },
    { chain: "postrouting", rules: snat },
  ];
}

/**
 * Flushes the skeleton's chains and writes their rules: in every ADD's fast transaction too, so
 * an ADD after `nft flush table` or `nft flush chain` (chains, maps and elements kept, rules
 * gone) puts them back; the chains must exist (ENOENT otherwise: the slow path declares them).
 */
export function writeSkeletonRules(tx: Transaction): void {
  for (const { chain, rules } of skeletonRules()) {
    tx.flush({ kind: "chain", name: chain });
    for (const rule of rules) tx.add({ kind: "rule", chain, rule });
  }
}

export interface SnatChain {
  family: Family;
  chain: string;
  subnet: string;
}

export interface Desired {
  elements: Element[];
  guards: Array<{ family: Family; chain: string; conditions: string[] }>;
  /** The subnets' chains and counters the snat elements name (shared by the subnet's containers). */
  snatChains: SnatChain[];
}

/** Every element (and guard chain) this instance should have. */
export function desired(c: PortMapConf): Desired {
  const comment = nftOwnerComment(c);
  const elements: Element[] = [];
  const guards: Desired["guards"] = [];
  const snatChains: SnatChain[] = [];
  const seen = new Set<string>();
  const push = (e: Element): void => {
    const k = keyText(e);
    if (seen.has(k)) return;
    seen.add(k);
    elements.push(e);
  };
  for (const ct of c.containers) {
    const f = ct.family;
    const n = names(f);
    const conditions = f === 4 ? c.conditionsV4 : c.conditionsV6;
    const chain = guardChain(c, f);
    const maps = mappingsFor(c, f);
    if (conditions.length && maps.length) guards.push({ family: f, chain, conditions });
    for (const m of maps) {
      const hostKey = (m2: Mapping): string[] =>
        m2.hostIP !== undefined
          ? [m2.hostIP, m2.protocol, String(m2.hostPort)]
          : [m2.protocol, String(m2.hostPort)];
      const key = hostKey(m);
      const specific = m.hostIP !== undefined;
      push({
        kind: "element",
        map: specific ? n.dnatIp : n.dnatAny,
        key,
        value: [ct.address, String(m.containerPort)],
        comment,
      });
      if (conditions.length)
        push({
          kind: "element",
          map: specific ? n.guardIp : n.guardAny,
          key,
          value: [`jump ${chain}`],
          comment,
        });
      if (c.snat) {
        const key = [ct.address, m.protocol, String(m.containerPort)];
        if (c.masqAll) push({ kind: "element", set: n.snatAll, key, comment });
        else {
          const to = snatChain(f, ct.subnet);
          if (!snatChains.some((x) => x.chain === to))
            snatChains.push({ family: f, chain: to, subnet: ct.subnet });
          push({ kind: "element", map: n.snat, key, value: [to], comment });
        }
      }
    }
  }
  return { elements, guards, snatChains };
}

/**
 * A subnet's base chain at postrouting: masquerade what was DNATed to one of the subnet's
 * containers (its key in the snat map, which names this chain's counter) and comes from the
 * subnet (hairpin: another container of the bridge reaches the host port even with
 * bridge-nf-call-iptables 0) or from localhost, exactly the traffic upstream's iptables backend
 * marks. Rewritten by every ADD that needs it: it is the same text for every container of the
 * subnet, and the transaction is atomic. These are the rules CHECK compares too.
 */
export function snatChainRules(s: SnatChain): SkeletonChain {
  const ip = ipx(s.family);
  const lookup = `counter name ${ip} daddr . meta l4proto . th dport map @${names(s.family).snat} masquerade`;
  const to = concat("ct status dnat", ip, "daddr", prefix(s.subnet));
  const rules = [concat(to, ip, "saddr", prefix(s.subnet), lookup)];
  if (s.family === 4) rules.push(concat(to, "ip saddr 127.0.0.1", lookup));
  return { chain: s.chain, rules };
}

export function snatChainTransaction(tx: Transaction, s: SnatChain): void {
  tx.add({ kind: "counter", name: s.chain, comment: `masquerade to ${s.subnet}, named by the snat map` });
  tx.add({ kind: "chain", name: s.chain, type: "nat", hook: "postrouting", priority: "srcnat" });
  tx.flush({ kind: "chain", name: s.chain });
  for (const rule of snatChainRules(s).rules) tx.add({ kind: "rule", chain: s.chain, rule });
}

export function guardTransaction(tx: Transaction, g: Desired["guards"][number]): void {
  tx.add({ kind: "chain", name: g.chain });
  tx.flush({ kind: "chain", name: g.chain });
  tx.add({ kind: "rule", chain: g.chain, rule: concat(g.conditions, "return") });
  tx.add({ kind: "rule", chain: g.chain, rule: "accept" });
}

/** One attachment's part of a transaction: chains first, then each element with its owner element. */
export function ownTransaction(tx: Transaction, owner: string, want: Desired, verb: "create" | "add"): void {
  for (const s of want.snatChains) snatChainTransaction(tx, s);
  for (const g of want.guards) guardTransaction(tx, g);
  for (const e of want.elements) {
    tx[verb](e);
    tx.add(ownerElement(e, owner, e.comment));
  }
}
