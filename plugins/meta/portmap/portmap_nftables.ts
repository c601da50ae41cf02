/**
 * The nftables backend, built so that a packet and an ADD cost the same with 5,000 containers as
 * with one: table `inet cni_nft_portmap` holds a fixed set of rules, and every container's state
 * is elements of maps keyed by (host address, protocol, port), each element's comment naming its
 * owner (network, interface, container). See docs/portmap.md.
 *
 *   prerouting/output (nat, dstnat): fib daddr type local jump hostports
 *   hostports: per family, in order
 *     daddr . l4proto . dport vmap @guard_ip4     containers with conditions: jump to their chain
 *     dnat to daddr . l4proto . dport map @dnat_ip4   mappings with a hostIP
 *     l4proto . dport vmap @guard_any4
 *     dnat to l4proto . dport map @dnat_any4          mappings for any local address
 *   guard4-<instance> (only with conditionsV4): <conditions> return; accept (= no DNAT)
 *   postrouting (nat, srcnat): ct status dnat saddr . daddr . l4proto . dport @masq4 masquerade
 *     masq4 holds (container subnet or 127.0.0.1 or 0.0.0.0/0 with masqAll) . container . proto . port
 *
 * ADD creates its elements with `create`, so it fails rather than overwrites when a key exists;
 * only then does it take the lock, list the table and take the keys over. DEL, GC and take-overs
 * read before they write and hold the lock, so they only ever delete elements whose comment is
 * theirs at that moment: concurrent ADD/DEL of different containers cannot remove each other's.
 */
import { CniError, ErrorCode, withFlock } from "../../../src/cni/index.js";
import {
  nftNetworkHash,
  nftOwnerComment as nftComment,
  nftOwnerHash as nftInstanceHash,
} from "../../../src/cni/attachment.js";
import {
  NFTables,
  applyTransactions,
  applyWithSkeleton,
  codeFromMessage,
  concat,
  isAlreadyExists,
  isNotFound,
  type Element,
  type Transaction,
} from "../../../src/nftables/index.js";
import { elementsFromJson, parseListing } from "../../../src/nftables/json.js";
import { systemRunner, type Completed } from "../../../src/process/index.js";
import {
  deleteUpstreamRules,
  missingInUpstreamLayout,
  readUpstreamPortmap,
  udpHostPorts,
} from "./portmap_nftables_upstream.js";
import {
  LOCK_FILE,
  mappingsFor,
  type Family,
  type Instance,
  type Mapping,
  type PortMapConf,
  type PortMapper,
} from "./config.js";

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

export function guardChain(i: Instance, f: Family): string {
  return `guard${f}-${nftInstanceHash(i)}`;
}

function staticTransaction(tx: Transaction): void {
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
function keyText(e: Element): string {
  return `${e.set ?? e.map}|${e.key.map((k) => k.replace(/\/(32|128)$/, "")).join(" . ")}`;
}
function valueText(e: Element): string {
  return (e.value ?? []).join(" . ");
}

function keyOnly(e: Element): Element {
  return { kind: "element", ...(e.map !== undefined ? { map: e.map } : { set: e.set! }), key: e.key };
}

interface Desired {
  elements: Element[];
  guards: Array<{ family: Family; chain: string; conditions: string[] }>;
}

/** Every element (and guard chain) this instance should have. */
export function desired(c: PortMapConf): Desired {
  const comment = nftComment(c);
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

function guardTransaction(tx: Transaction, g: Desired["guards"][number]): void {
  tx.add({ kind: "chain", name: g.chain });
  tx.flush({ kind: "chain", name: g.chain });
  tx.add({ kind: "rule", chain: g.chain, rule: concat(g.conditions, "return") });
  tx.add({ kind: "rule", chain: g.chain, rule: "accept" });
}

interface TableState {
  elements: Element[];
  chains: string[];
}

/** nft runs the library has no call for yet (a whole-table JSON read, `get element`). */
function execNft(
  args: string[],
  exec: { netns?: string; nftPath?: string },
  stdin?: string,
): Promise<Completed> {
  return systemRunner.run({
    argv: [exec.nftPath ?? "nft", ...args],
    ...(stdin !== undefined ? { stdin } : {}),
    ...(exec.netns !== undefined ? { netns: exec.netns } : {}),
  });
}

export class NftablesPortMapper implements PortMapper {
  readonly name = "nftables";
  readonly nft: NFTables;
  constructor(private readonly exec: { netns?: string; nftPath?: string } = {}) {
    this.nft = new NFTables({ family: "inet", table: NFT_TABLE, ...exec });
  }

  /** Everything in our table in one nft run, or undefined when the table does not exist. */
  async state(): Promise<TableState | undefined> {
    const res = await execNft(["--json", "list", "table", "inet", NFT_TABLE], this.exec);
    if (res.code !== 0) {
      if (codeFromMessage(res.stderr) === "ENOENT") return undefined;
      throw new CniError(ErrorCode.Internal, `nft list table inet ${NFT_TABLE}: ${res.stderr.trim()}`);
    }
    const out: TableState = { elements: [], chains: [] };
    for (const [kind, body] of parseListing(res.stdout)) {
      if (body["table"] !== NFT_TABLE || body["family"] !== "inet") continue;
      if (kind === "chain" && typeof body["name"] === "string") out.chains.push(body["name"]);
      if ((kind === "set" || kind === "map") && typeof body["name"] === "string")
        out.elements.push(...elementsFromJson(kind, body["name"], body));
    }
    return out;
  }

  async forward(c: PortMapConf): Promise<void> {
    const want = desired(c);
    const build = (withStatic: boolean): Transaction => {
      const tx = this.nft.newTransaction();
      if (withStatic) staticTransaction(tx);
      for (const g of want.guards) guardTransaction(tx, g);
      for (const e of want.elements) tx.create(e);
      return tx;
    };
    try {
      // The static table is declared only when nft reports it missing: half the cost of an ADD.
      await applyWithSkeleton(this.nft, { fast: [build(false)], full: [build(true)] });
      return;
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
    // A key exists: ours from a repeated ADD, or another container's. Take it over under the lock.
    await withFlock(LOCK_FILE, async () => {
      const state = await this.state();
      const have = new Map((state?.elements ?? []).map((e) => [keyText(e), e]));
      const comment = nftComment(c);
      const tx2 = this.nft.newTransaction();
      staticTransaction(tx2);
      for (const g of want.guards) guardTransaction(tx2, g);
      const wantKeys = new Set(want.elements.map(keyText));
      for (const e of want.elements) {
        const old = have.get(keyText(e));
        if (old && old.comment === comment && valueText(old) === valueText(e)) continue;
        if (old) tx2.delete(keyOnly(old));
        // A key taken from a container with conditions must lose its guard too.
        const guardOf = e.map?.startsWith("dnat_")
          ? have.get(keyText({ ...e, map: e.map.replace("dnat_", "guard_") }))
          : undefined;
        if (guardOf && !wantKeys.has(keyText(guardOf))) tx2.delete(keyOnly(guardOf));
        tx2.add(e);
      }
      await applyTransactions([tx2], this.exec);
    });
  }

  /** Ours, else upstream's nftables layout: a container ADDed by upstream's portmap checks too. */
  async check(c: PortMapConf): Promise<string[]> {
    const ours = await this.checkOwn(c);
    if (ours.length === 0) return ours;
    const upstream = missingInUpstreamLayout(c, await readUpstreamPortmap(this.exec, c.containerId));
    return upstream.length === 0 ? upstream : ours;
  }

  /** What is missing from cni-nft's own table. */
  async checkOwn(c: PortMapConf): Promise<string[]> {
    const state = await this.state();
    const have = new Map((state?.elements ?? []).map((e) => [keyText(e), e]));
    const missing: string[] = [];
    for (const e of desired(c).elements) {
      const old = have.get(keyText(e));
      if (!old || old.comment !== e.comment || valueText(old) !== valueText(e))
        missing.push(`element ${e.key.join(" . ")} of ${e.map ?? e.set} in table inet ${NFT_TABLE}`);
    }
    for (const g of desired(c).guards)
      if (!state?.chains.includes(g.chain)) missing.push(`chain ${g.chain} in table inet ${NFT_TABLE}`);
    return missing;
  }

  /** Deletes the elements and guard chains `owned` selects, under the lock; returns UDP host ports. */
  private async remove(
    owned: (comment: string) => boolean,
    chains: (name: string) => boolean,
  ): Promise<number[]> {
    return withFlock(LOCK_FILE, async () => {
      const state = await this.state();
      if (!state) return [];
      const tx = this.nft.newTransaction();
      const udp: number[] = [];
      for (const e of state.elements) {
        if (e.comment === undefined || !owned(e.comment)) continue;
        tx.delete(keyOnly(e));
        if (e.map?.startsWith("dnat_") && e.key.at(-2) === "udp") udp.push(Number(e.key.at(-1)));
      }
      // Elements first: a guard chain cannot go while a verdict map element jumps to it.
      for (const ch of state.chains)
        if (/^guard[46]-/.test(ch) && chains(ch)) tx.delete({ kind: "chain", name: ch });
      await applyTransactions([tx], this.exec);
      return udp;
    });
  }

  /**
   * DEL with the container's own keys, known from its config (runtimeConfig.portMappings and the
   * addresses in prevResult, which podman sends on DEL): one nft run reads just those elements and
   * one deletes them, however many other containers have mappings. Undefined when that cannot
   * decide (no mappings known, a key missing, or a key now owned by another container): the
   * caller then lists the table.
   */
  private async removeKnown(known: PortMapConf): Promise<number[] | undefined> {
    const want = desired(known);
    if (want.elements.length === 0) return undefined;
    const comment = nftComment(known);
    return withFlock(LOCK_FILE, async () => {
      const byTarget = new Map<string, Element[]>();
      for (const e of want.elements) {
        const target = `${e.map !== undefined ? "map" : "set"} ${e.map ?? e.set}`;
        byTarget.set(target, [...(byTarget.get(target) ?? []), e]);
      }
      const get = [...byTarget.values()]
        .map(
          (es) =>
            `get element inet ${NFT_TABLE} ${es[0]!.map ?? es[0]!.set} { ${es.map((e) => e.key.join(" . ")).join(", ")} }`,
        )
        .join("\n");
      const res = await execNft(["-f", "-"], this.exec, get + "\n");
      if (res.code !== 0) return undefined;
      // nft 1.0.6 prints `get` results as text only; comments cannot hold a quote, so this is exact.
      const owners = [...res.stdout.matchAll(/comment "([^"]*)"/g)].map((m) => m[1]);
      if (owners.length !== want.elements.length || owners.some((o) => o !== comment)) return undefined;
      const tx = this.nft.newTransaction();
      for (const e of want.elements) tx.delete(keyOnly(e));
      for (const g of want.guards) tx.destroy({ kind: "chain", name: g.chain });
      try {
        await applyTransactions([tx], this.exec);
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
      return want.elements
        .filter((e) => e.map?.startsWith("dnat_") && e.key.at(-2) === "udp")
        .map((e) => Number(e.key.at(-1)));
    });
  }

  async unforward(i: Instance, known?: PortMapConf): Promise<number[]> {
    const comment = nftComment(i);
    const hash = nftInstanceHash(i);
    const [udp, upstreamUdp] = await Promise.all([
      (known ? this.removeKnown(known) : Promise.resolve(undefined)).then(
        (done) =>
          done ??
          this.remove(
            (c) => c === comment,
            (ch) => ch.endsWith(`-${hash}`),
          ),
      ),
      this.removeUpstreamLeftovers(i.containerId),
    ]);
    return [...udp, ...upstreamUdp];
  }

  async gc(network: string, valid: Array<{ containerId: string; ifname: string }>): Promise<void> {
    const keep = new Set(
      valid.map((a) => nftInstanceHash({ network, containerId: a.containerId, ifname: a.ifname })),
    );
    const netHash = nftNetworkHash(network);
    const stale = (hash: string): boolean => hash.startsWith(netHash) && !keep.has(hash);
    await this.remove(
      (c) => stale(c.split(",")[0]!),
      (ch) => stale(ch.replace(/^guard[46]-/, "")),
    );
  }

  /**
   * Rules upstream's nftables portmap wrote for this container (tables ip/ip6 cni_hostport, the
   * container ID as comment), so a host moving to cni-nft needs no manual cleanup.
   */
  async removeUpstreamLeftovers(containerId: string): Promise<number[]> {
    const rules = await readUpstreamPortmap(this.exec, containerId);
    await deleteUpstreamRules(rules, this.exec);
    return udpHostPorts(rules);
  }
}
