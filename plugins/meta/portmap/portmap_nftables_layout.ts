/**
 * The layout of portmap's own nftables table, `inet cni_nft_portmap` (see portmap_nftables.ts):
 * its fixed skeleton, and the elements and guard chains one attachment should have.
 */
import { nftOwnerComment, nftOwnerHash, type Attachment } from "../../../src/cni/attachment.js";
import { concat, type Element, type Transaction } from "../../../src/nftables/index.js";
import { mappingsFor, type Family, type Mapping, type PortMapConf } from "./config.js";

export const NFT_TABLE = "cni_nft_portmap";

const FAMILIES = [4, 6] as const;
const ipx = (f: Family): "ip" | "ip6" => (f === 4 ? "ip" : "ip6");
const addrType = (f: Family): string => (f === 4 ? "ipv4_addr" : "ipv6_addr");

/** Set and map names per family. */
export function names(f: Family): {
  dnatIp: string;
  dnatAny: string;
  guardIp: string;
  guardAny: string;
  masq: string;
} {
  return {
    dnatIp: `dnat_ip${f}`,
    dnatAny: `dnat_any${f}`,
    guardIp: `guard_ip${f}`,
    guardAny: `guard_any${f}`,
    masq: `masq${f}`,
  };
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
    tx.add({
      kind: "set",
      name: n.masq,
      type: `${a} . ${a} . inet_proto . inet_service`,
      flags: ["interval"],
    });
  }
  tx.add({ kind: "chain", name: "hostports" });
  tx.flush({ kind: "chain", name: "hostports" });
  for (const f of FAMILIES) {
    const n = names(f);
    const ip = ipx(f);
    const nfproto = f === 4 ? "ipv4" : "ipv6";
    const rules = [
      `${ip} daddr . meta l4proto . th dport vmap @${n.guardIp}`,
      `dnat ${ip} to ${ip} daddr . meta l4proto . th dport map @${n.dnatIp}`,
      `meta nfproto ${nfproto} meta l4proto . th dport vmap @${n.guardAny}`,
      `meta nfproto ${nfproto} dnat ${ip} to meta l4proto . th dport map @${n.dnatAny}`,
    ];
    for (const rule of rules) tx.add({ kind: "rule", chain: "hostports", rule });
  }
  for (const [chain, hook] of [
    ["prerouting", "prerouting"],
    ["output", "output"],
  ] as const) {
    // nft names dstnat only for prerouting; -100 is its value, upstream's choice for output too.
    tx.add({ kind: "chain", name: chain, type: "nat", hook, priority: -100 });
    tx.flush({ kind: "chain", name: chain });
    tx.add({ kind: "rule", chain, rule: "fib daddr type local jump hostports" });
  }
  tx.add({ kind: "chain", name: "postrouting", type: "nat", hook: "postrouting", priority: "srcnat" });
  tx.flush({ kind: "chain", name: "postrouting" });
  for (const f of FAMILIES) {
    const ip = ipx(f);
    tx.add({
      kind: "rule",
      chain: "postrouting",
      rule: `ct status dnat ${ip} saddr . ${ip} daddr . meta l4proto . th dport @${names(f).masq} masquerade`,
    });
  }
}

/** Canonical text of an element key, for comparing what we want with what nft lists. */
export function keyText(e: Element): string {
  return `${e.set ?? e.map}|${e.key.map((k) => k.replace(/\/(32|128)$/, "")).join(" . ")}`;
}
export function valueText(e: Element): string {
  return (e.value ?? []).join(" . ");
}

export function keyOnly(e: Element): Element {
  return { kind: "element", ...(e.map !== undefined ? { map: e.map } : { set: e.set! }), key: e.key };
}

export interface Desired {
  elements: Element[];
  guards: Array<{ family: Family; chain: string; conditions: string[] }>;
}

/** Every element (and guard chain) this instance should have. */
export function desired(c: PortMapConf): Desired {
  const comment = nftOwnerComment(c);
  const elements: Element[] = [];
  const guards: Desired["guards"] = [];
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
        const tail = [ct.address, m.protocol, String(m.containerPort)];
        if (c.masqAll)
          push({ kind: "element", set: n.masq, key: [f === 4 ? "0.0.0.0/0" : "::/0", ...tail], comment });
        else {
          push({ kind: "element", set: n.masq, key: [ct.subnet, ...tail], comment });
          if (f === 4) push({ kind: "element", set: n.masq, key: ["127.0.0.1", ...tail], comment });
        }
      }
    }
  }
  return { elements, guards };
}

export function guardTransaction(tx: Transaction, g: Desired["guards"][number]): void {
  tx.add({ kind: "chain", name: g.chain });
  tx.flush({ kind: "chain", name: g.chain });
  tx.add({ kind: "rule", chain: g.chain, rule: concat(g.conditions, "return") });
  tx.add({ kind: "rule", chain: g.chain, rule: "accept" });
}
