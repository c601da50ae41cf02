/**
 * The layout of portmap's own nftables table, `inet cni_nft_portmap` (see portmap_nftables.ts):
 * its fixed skeleton, and the elements and chains one attachment should have.
 *
 * Every set is a hash of exact keys, so adding or deleting one container's elements costs the
 * same however many other containers are there (the interval set of the previous layout,
 * portmap_nftables_legacy.ts, made every delete cost O(elements) in the kernel), and no container
 * has a verdict element: the kernel validates every jump of every verdict map of the table on
 * each commit that adds a rule or a jump, so per-container jumps made every ADD O(containers)
 * (the layout before, portmap_nftables_v2.ts; and conditions' guards, portmap_nftables_guards.ts:
 * conditions are now classes, CondClass below). Masquerade is an object map from the DNATed
 * destination (container address . protocol . port) to the counter of the container's subnet:
 * the subnet's own base chain at postrouting looks the destination up there (`counter name ...
 * map`, which ends the rule when the key is missing), and while an element names the counter,
 * nft refuses to delete it (EBUSY), which tells a DEL whether the subnet's chain is still used.
 * `owners` holds one element per element of a container, keyed by (owner tag . key tag): a DEL
 * deletes both in one transaction, which fails unless the element is still its own, so DEL never
 * needs to read.
 */
import { nftOwnerComment, sha512Hex } from "../../../src/cni/attachment.js";
import { declareOwners, keyText, writeOwned } from "../../../src/hoststate/nft_owners.js";
import {
  concat,
  prefix,
  type Element,
  type SkeletonChain,
  type Transaction,
} from "../../../src/nftables/index.js";
import { mappingsFor, type Family, type PortMapConf } from "./config.js";

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
  /** Sets of the keys (hostIP . proto . port, proto . port) whose mappings carry conditions. */
  guardedIp: string;
  guardedAny: string;
  /** Object map: destination : the subnet's counter (hairpin and localhost masquerade). */
  snat: string;
  /** Set of destinations whose every connection is masqueraded (masqAll). */
  snatAll: string;
} {
  return {
    dnatIp: `dnat_ip${f}`,
    dnatAny: `dnat_any${f}`,
    guardedIp: `guarded_ip${f}`,
    guardedAny: `guarded_any${f}`,
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

/**
 * A class of conditions: every container of one family with the same `conditionsV4/V6` shares
 * its counter, its two object maps (key : this counter) and its two base chains (prerouting and
 * output, just after `hostports`), so a container with conditions has elements, not a chain or
 * a jump of its own.
 */
export interface CondClass {
  family: Family;
  /** The counter and the prerouting chain; `<name>-out` the output chain. */
  name: string;
  conditions: string[];
}

export function condClass(f: Family, conditions: readonly string[]): CondClass {
  // Joined as a rule joins them: ["a", "b"] and ["a b"] are one class (as nft lists either).
  const name = `cond${f}-${sha512Hex(`${f} ${concat(conditions)}`).slice(0, 12)}`;
  return { family: f, name, conditions: [...conditions] };
}

/** A class's object maps: its keys with a hostIP, and its keys on any local address. */
export function condMaps(name: string): { ip: string; any: string } {
  return { ip: name.replace(/^cond([46])-/, "cond_ip$1-"), any: name.replace(/^cond([46])-/, "cond_any$1-") };
}

export const COND_CLASS = /^cond([46])-([0-9a-f]{12})$/;

export function staticTransaction(tx: Transaction): void {
  tx.add({ kind: "table", comment: "CNI portmap (cni-nft): host ports to containers, state in maps" });
  for (const f of FAMILIES) {
    const n = names(f);
    const a = addrType(f);
    tx.add({ kind: "map", name: n.dnatIp, type: `${a} . inet_proto . inet_service : ${a} . inet_service` });
    tx.add({ kind: "map", name: n.dnatAny, type: `inet_proto . inet_service : ${a} . inet_service` });
    tx.add({ kind: "set", name: n.guardedIp, type: `${a} . inet_proto . inet_service` });
    tx.add({ kind: "set", name: n.guardedAny, type: `inet_proto . inet_service` });
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
      // Keys with conditions are DNATed by their class's chain, after this one, or not at all.
      `${ip} daddr . meta l4proto . th dport @${n.guardedIp} return`,
      `dnat ${ip} to ${ip} daddr . meta l4proto . th dport map @${n.dnatIp}`,
      `meta nfproto ${nfproto} meta l4proto . th dport @${n.guardedAny} return`,
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
  /** The classes of conditions the elements name (shared by the class's containers). */
  classes: CondClass[];
  /** The subnets' chains and counters the snat elements name (shared by the subnet's containers). */
  snatChains: SnatChain[];
}

/** Every element (and the shared chains they name) this instance should have. */
export function desired(c: PortMapConf): Desired {
  const comment = nftOwnerComment(c);
  const elements: Element[] = [];
  const classes: CondClass[] = [];
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
    const cls = conditions.length ? condClass(f, conditions) : undefined;
    const maps = mappingsFor(c, f);
    if (cls && maps.length && !classes.some((x) => x.name === cls.name)) classes.push(cls);
    for (const m of maps) {
      const specific = m.hostIP !== undefined;
      const key = specific ? [m.hostIP!, m.protocol, String(m.hostPort)] : [m.protocol, String(m.hostPort)];
      push({
        kind: "element",
        map: specific ? n.dnatIp : n.dnatAny,
        key,
        value: [ct.address, String(m.containerPort)],
        comment,
      });
      if (cls) {
        push({ kind: "element", set: specific ? n.guardedIp : n.guardedAny, key, comment });
        const cm = condMaps(cls.name);
        push({ kind: "element", map: specific ? cm.ip : cm.any, key, value: [cls.name], comment });
      }
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
  return { elements, classes, snatChains };
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

/**
 * A class's two base chains (prerouting and output, after `hostports`, which leaves the class's
 * keys alone), the same rules in each: a key of the class whose packet meets the conditions is
 * DNATed (its element names the class's counter, which counts it); a key of any class with a
 * hostIP ends here (a failed condition of its own class means no DNAT at all, not the mapping on
 * any address); then the class's keys on any address. The first chain that DNATs ends the nat
 * hook for the connection, so every class's chain can run for every packet.
 */
export function condChainRules(k: CondClass): SkeletonChain[] {
  const ip = ipx(k.family);
  const n = names(k.family);
  const m = condMaps(k.name);
  const nfproto = k.family === 4 ? "ipv4" : "ipv6";
  const rules = [
    concat(
      "fib daddr type local",
      k.conditions,
      `counter name ${ip} daddr . meta l4proto . th dport map @${m.ip}`,
      `dnat ${ip} to ${ip} daddr . meta l4proto . th dport map @${n.dnatIp}`,
    ),
    `fib daddr type local ${ip} daddr . meta l4proto . th dport @${n.guardedIp} return`,
    concat(
      `fib daddr type local meta nfproto ${nfproto}`,
      k.conditions,
      `counter name meta l4proto . th dport map @${m.any}`,
      `dnat ${ip} to meta l4proto . th dport map @${n.dnatAny}`,
    ),
  ];
  return [
    { chain: k.name, rules },
    { chain: `${k.name}-out`, rules },
  ];
}

export function condClassTransaction(tx: Transaction, k: CondClass): void {
  const a = addrType(k.family);
  const m = condMaps(k.name);
  tx.add({
    kind: "counter",
    name: k.name,
    comment: "DNATed under these conditions, named by the class's maps",
  });
  tx.add({ kind: "map", name: m.ip, type: `${a} . inet_proto . inet_service : counter` });
  tx.add({ kind: "map", name: m.any, type: `inet_proto . inet_service : counter` });
  for (const [chain, hook] of [
    [k.name, "prerouting"],
    [`${k.name}-out`, "output"],
  ] as const)
    tx.add({ kind: "chain", name: chain, type: "nat", hook, priority: -99 });
  for (const { chain, rules } of condChainRules(k)) {
    tx.flush({ kind: "chain", name: chain });
    for (const rule of rules) tx.add({ kind: "rule", chain, rule });
  }
}

/** Drops a class (chains, maps, counter), failing with EBUSY while an element names its counter. */
export function dropCondClass(tx: Transaction, name: string): void {
  tx.destroy({ kind: "counter", name });
  for (const chain of [name, `${name}-out`]) {
    tx.add({ kind: "chain", name: chain });
    tx.flush({ kind: "chain", name: chain });
    tx.delete({ kind: "chain", name: chain });
  }
  const m = condMaps(name);
  const a = addrType(name.startsWith("cond6-") ? 6 : 4);
  tx.destroy({ kind: "map", name: m.ip, type: `${a} . inet_proto . inet_service : counter` });
  tx.destroy({ kind: "map", name: m.any, type: `inet_proto . inet_service : counter` });
}

/**
 * One attachment's part of a transaction: chains first, then each element with its owner
 * element; the keys in `recorded` (an earlier ADD's, from the record) asserted as its own, not
 * created (writeOwned).
 */
export function ownTransaction(
  tx: Transaction,
  owner: string,
  want: Desired,
  verb: "create" | "add",
  recorded: ReadonlySet<string> = new Set(),
): void {
  for (const s of want.snatChains) snatChainTransaction(tx, s);
  for (const k of want.classes) condClassTransaction(tx, k);
  for (const e of want.elements) writeOwned(tx, e, owner, recorded, verb);
}
