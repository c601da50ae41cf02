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
import { withFlock } from "../../../src/cni/index.js";
import { nftOwnerComment, nftOwnerHash, staleOwner, type Attachment } from "../../../src/cni/attachment.js";
import type { Effects, HostStateBackend, HostTools } from "../../../src/hoststate/index.js";
import {
  applyWithSkeleton,
  isAlreadyExists,
  isNotFound,
  type Element,
  type Interface,
  type Transaction,
} from "../../../src/nftables/index.js";
import {
  deleteUpstreamRules,
  missingInUpstreamLayout,
  readUpstreamPortmap,
  udpHostPorts,
} from "./portmap_nftables_upstream.js";
import {
  desired,
  guardTransaction,
  keyOnly,
  keyText,
  staticTransaction,
  valueText,
  NFT_TABLE,
} from "./portmap_nftables_layout.js";
import { LOCK_FILE, type PortMapConf, type PortMapSpec } from "./config.js";

export { NFT_TABLE, desired, guardChain, names } from "./portmap_nftables_layout.js";

interface TableState {
  elements: Element[];
  chains: string[];
}

/** UDP host ports of dnat elements (for the conntrack flush). */
function udpPorts(elements: readonly Element[]): number[] {
  const ports = elements
    .filter((e) => e.map?.startsWith("dnat_") && e.key.at(-2) === "udp")
    .map((e) => Number(e.key.at(-1)));
  return [...new Set(ports)];
}

export class NftablesPortMapper implements HostStateBackend<PortMapSpec> {
  readonly component = "portmap";
  readonly name = "nftables";
  /** `nft`: the Interface of table inet cni_nft_portmap (upstream's tables through forTable). */
  constructor(
    readonly nft: Interface,
    private readonly tools: HostTools,
  ) {}

  present(): boolean {
    return this.tools.has("nft");
  }

  /** Everything in our table in one nft run, or undefined when the table does not exist. */
  async state(): Promise<TableState | undefined> {
    try {
      const t = await this.nft.listTable();
      return { elements: [...t.elements.values()].flat(), chains: t.chains.map((c) => c.name) };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  async setUp(a: Attachment, spec: PortMapSpec): Promise<Effects> {
    const c: PortMapConf = { ...a, ...spec };
    const want = desired(c);
    const effects: Effects = { udpPorts: udpPorts(want.elements) };
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
      return effects;
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
    }
    // A key exists: ours from a repeated ADD, or another container's. Take it over under the lock.
    await withFlock(LOCK_FILE, async () => {
      const state = await this.state();
      const have = new Map((state?.elements ?? []).map((e) => [keyText(e), e]));
      const comment = nftOwnerComment(a);
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
      await this.nft.run(tx2);
    });
    return effects;
  }

  /** Ours, else upstream's nftables layout: a container ADDed by upstream's portmap checks too. */
  async check(a: Attachment, spec: PortMapSpec): Promise<string[]> {
    const c: PortMapConf = { ...a, ...spec };
    const ours = await this.checkOwn(c);
    if (ours.length === 0) return ours;
    const upstream = missingInUpstreamLayout(c, await readUpstreamPortmap(this.nft, c.containerId));
    return upstream.length === 0 ? upstream : ours;
  }

  /** What is missing from cni-nft's own table. */
  async checkOwn(c: PortMapConf): Promise<string[]> {
    const state = await this.state();
    const have = new Map((state?.elements ?? []).map((e) => [keyText(e), e]));
    const missing: string[] = [];
    const want = desired(c);
    for (const e of want.elements) {
      const old = have.get(keyText(e));
      if (!old || old.comment !== e.comment || valueText(old) !== valueText(e))
        missing.push(`element ${e.key.join(" . ")} of ${e.map ?? e.set} in table inet ${NFT_TABLE}`);
    }
    for (const g of want.guards)
      if (!state?.chains.includes(g.chain)) missing.push(`chain ${g.chain} in table inet ${NFT_TABLE}`);
    return missing;
  }

  /** Deletes the elements and guard chains `owned` selects, under the lock; returns UDP host ports. */
  private async removeOwned(
    owned: (comment: string) => boolean,
    chains: (name: string) => boolean,
  ): Promise<number[]> {
    return withFlock(LOCK_FILE, async () => {
      const state = await this.state();
      if (!state) return [];
      const tx = this.nft.newTransaction();
      const gone = state.elements.filter((e) => e.comment !== undefined && owned(e.comment));
      for (const e of gone) tx.delete(keyOnly(e));
      // Elements first: a guard chain cannot go while a verdict map element jumps to it.
      for (const ch of state.chains)
        if (/^guard[46]-/.test(ch) && chains(ch)) tx.delete({ kind: "chain", name: ch });
      await this.nft.run(tx);
      return udpPorts(gone);
    });
  }

  /**
   * DEL with the container's own keys, known from its config (runtimeConfig.portMappings and the
   * addresses in prevResult, which podman sends on DEL): one nft run reads just those elements and
   * one deletes them, however many other containers have mappings. Undefined when that cannot
   * decide (no mappings known, a key missing, or a key now owned by another container): the
   * caller then lists the table.
   */
  private async removeKnown(c: PortMapConf): Promise<number[] | undefined> {
    const want = desired(c);
    if (want.elements.length === 0) return undefined;
    const comment = nftOwnerComment(c);
    return withFlock(LOCK_FILE, async () => {
      let found: Element[];
      try {
        found = await this.nft.getElements(want.elements.map(keyOnly));
      } catch {
        return undefined;
      }
      if (found.length !== want.elements.length || found.some((e) => e.comment !== comment)) return undefined;
      const tx = this.nft.newTransaction();
      for (const e of want.elements) tx.delete(keyOnly(e));
      for (const g of want.guards) tx.destroy({ kind: "chain", name: g.chain });
      try {
        await this.nft.run(tx);
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw e;
      }
      return udpPorts(want.elements);
    });
  }

  /** `ownOnly`: leave upstream's layout alone (a migration removes it only once ours is in place). */
  async remove(a: Attachment, spec?: PortMapSpec, opts: { ownOnly?: boolean } = {}): Promise<Effects> {
    const comment = nftOwnerComment(a);
    const hash = nftOwnerHash(a);
    const [udp, upstreamUdp] = await Promise.all([
      (spec ? this.removeKnown({ ...a, ...spec }) : Promise.resolve(undefined)).then(
        (done) =>
          done ??
          this.removeOwned(
            (c) => c === comment,
            (ch) => ch.endsWith(`-${hash}`),
          ),
      ),
      opts.ownOnly ? [] : this.removeUpstreamLeftovers(a.containerId),
    ]);
    return { udpPorts: [...udp, ...upstreamUdp] };
  }

  async gc(network: string, valid: readonly Attachment[]): Promise<Effects> {
    const stale = staleOwner(network, valid);
    const udp = await this.removeOwned(stale, (ch) => stale(ch.replace(/^guard[46]-/, "")));
    return { udpPorts: udp };
  }

  /**
   * Rules upstream's nftables portmap wrote for this container (tables ip/ip6 cni_hostport, the
   * container ID as comment), so a host moving to cni-nft needs no manual cleanup.
   */
  async removeUpstreamLeftovers(containerId: string): Promise<number[]> {
    const rules = await readUpstreamPortmap(this.nft, containerId);
    await deleteUpstreamRules(this.nft, rules);
    return udpHostPorts(rules);
  }
}
