/**
 * The nftables backend (cni-nft's own; upstream has none). One table, `inet cni_nft_firewall`:
 *
 *   chain forward    hook forward, priority filter - 10, policy accept:
 *                      jump isolation; jump admin;
 *                      traffic of container addresses (sets containers4/containers6): set the
 *                      accept mark bit(s), then accept (replies to a container only when
 *                      established or related, as upstream's iptables rules)
 *   chain admin      the operator's: created when missing, never flushed
 *   chain isolation  ingressPolicy same-bridge / isolated, from three sets:
 *                      iifname . oifname @isolated_pairs drop   (isolated: bridge to itself)
 *                      iifname . oifname @bridge_pairs return   (same bridge)
 *                      iifname @bridges oifname @bridges drop   (bridge to another bridge)
 *
 * A container is elements, not rules: its addresses, each with a comment that starts with the
 * instance hash (as the masquerade backend's rules), and for each one an element of set `owners`
 * (`<owner tag> . <element tag>`, as portmap's), so ADD is one nft run with no listing and the
 * chains never grow. DEL never reads nft either: it deletes each address together with its owner
 * element in one transaction, which fails for an address that is not (or no longer) its own; nft
 * names that operation, the address is skipped and the rest retried. Its addresses come from
 * prevResult, else from the attachment's record (src/hoststate/records.ts), written before the
 * first nft run. GC lists the sets once. (nft 1.0.6 fetches every element of the table before
 * any read: a listing costs O(containers).)
 *
 * An accept here only ends this table's chain: every other base chain at the forward hook still
 * runs, and its drop wins. That is why accepted packets carry a mark that another table (a host
 * firewall) can accept on; the priority puts this chain before chains at the standard filter
 * priority, so the mark is set when theirs runs. See docs/firewall.md.
 */
import { withFlock } from "../../../src/cni/index.js";
// Owner elements as portmap and masquerade write them: an address element's tag is `<set>|<address>`.
import {
  OWNERS_SET,
  deleteOwned,
  disown,
  keyText,
  ownerElement,
  ownerElementOf,
  takeOver,
  writeOwned,
} from "../../../src/hoststate/nft_owners.js";
import {
  nftNetworkHash,
  nftOwnerComment,
  nftOwnerHash,
  staleOwner,
  type Attachment,
} from "../../../src/cni/attachment.js";
import {
  NO_EFFECTS,
  type AttachmentRecords,
  type Effects,
  type HostStateBackend,
  type HostTools,
} from "../../../src/hoststate/index.js";
import {
  ifname,
  isAlreadyExists,
  isNotFound,
  missingRules,
  type Element,
  type Interface,
  type Rule,
  type SkeletonChain,
  type Transaction,
} from "../../../src/nftables/index.js";
import {
  familyOf,
  isolationOf,
  recordedAddresses,
  type FirewallSpec,
  type IsolationSpec,
} from "./firewall_backend.js";
import { markHex, type HostForwardRules } from "./firewall_host_forward.js";

export const NFT_TABLE = "cni_nft_firewall";
export const NFT_PRIORITY = "filter - 10";
export const NFT_LOCK_FILE = "/run/cni-nft-firewall-nft.lock";
const SETS = { 4: "containers4", 6: "containers6" } as const;
/** This backend's records (src/hoststate/records.ts): the addresses an ADD is about to accept. */
export const RECORDS = "firewall-nftables";

/** The address element of `ip` (no prefix length), with its owner's comment when given. */
function addressElement(ip: string, comment?: string): Element {
  const bare = ip.split("/")[0]!;
  return { kind: "element", set: SETS[familyOf(bare)], key: [bare], ...(comment ? { comment } : {}) };
}

/** An owner element's key without quotes (nft lists strings without them). */
const tagText = (e: Element): string => e.key.map((k) => k.replace(/^"|"$/g, "")).join(" . ");

const MARK_PREFIX = "mark_";

/** The note of use (src/hoststate/records.ts) of a network's hostForward accept. */
function hostForwardUse(network: string): string {
  return `hostforward-${nftNetworkHash(network)}`;
}

function markCounter(mark: number): string {
  return `${MARK_PREFIX}${markHex(mark)}`;
}

export { markHex };

/** The rules of the table's own chains, in order (`admin` is the operator's: never written). */
export function skeletonRules(mark: number): SkeletonChain[] {
  const m = markHex(mark);
  return [
    {
      chain: "isolation",
      rules: [
        "iifname . oifname @isolated_pairs drop",
        "iifname . oifname @bridge_pairs return",
        "iifname @bridges oifname @bridges drop",
      ],
    },
    {
      chain: "forward",
      rules: [
        "jump isolation",
        "jump admin",
        ...(["ip", "ip6"] as const).flatMap((ip) => {
          const set = SETS[ip === "ip" ? 4 : 6];
          return [
            `${ip} daddr @${set} ct state established,related meta mark set meta mark | ${m} accept`,
            `${ip} saddr @${set} meta mark set meta mark | ${m} accept`,
          ];
        }),
      ],
    },
  ];
}

/**
 * Flushes the chains and writes their rules: every ADD does, so an ADD after `nft flush table`
 * (sets and chains kept, rules gone) puts them back; a missing chain makes it ENOENT.
 */
function writeSkeletonRules(tx: Transaction, mark: number): void {
  for (const { chain, rules } of skeletonRules(mark)) {
    tx.flush({ kind: "chain", name: chain });
    for (const rule of rules) tx.add({ kind: "rule", chain, rule });
  }
}

export class NftablesFirewall implements HostStateBackend<FirewallSpec> {
  readonly component = "firewall";
  readonly name = "nftables";
  /**
   * `nft`: the Interface of table inet cni_nft_firewall; `hostForward`: the network's accept in
   * the host's own dropping forward path, when its config asks for it.
   */
  constructor(
    readonly nft: Interface,
    private readonly tools: HostTools,
    private readonly records: AttachmentRecords,
    private readonly hostForward?: HostForwardRules,
  ) {}

  present(): boolean {
    return this.tools.has("nft");
  }

  /**
   * The counters naming another mark than `mark` ([] without the table): the full path deletes
   * them with the rules it rewrites, so a later ADD with the old mark rewrites them again.
   */
  private async otherMarks(mark: number): Promise<string[]> {
    try {
      const names = (await this.nft.listCounters()).map((c) => c.name);
      return names.filter((n) => n.startsWith(MARK_PREFIX) && n !== markCounter(mark));
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
  }

  /**
   * The table, its chains and sets, and the forward chain's rules (rewritten: it is ours);
   * `stale`: counters of other marks, deleted.
   */
  private base(tx: Transaction, mark: number, stale: readonly string[]): void {
    tx.add({
      kind: "table",
      comment: "cni-nft firewall plugin: forward accept for containers, bridge isolation",
    });
    // Names the mark the rules below set: an ADD's fast path touches it and so fails (ENOENT)
    // when the rules were written for another mark, which makes it rewrite them.
    tx.add({ kind: "counter", name: markCounter(mark), comment: "the accept mark of the forward rules" });
    for (const name of stale) tx.delete({ kind: "counter", name });
    tx.add({
      kind: "set",
      name: SETS[4],
      type: "ipv4_addr",
      comment: "container addresses (comment: owner)",
    });
    tx.add({
      kind: "set",
      name: SETS[6],
      type: "ipv6_addr",
      comment: "container addresses (comment: owner)",
    });
    tx.add({
      kind: "set",
      name: "bridges",
      type: "ifname",
      comment: "bridges with ingressPolicy same-bridge or isolated",
    });
    tx.add({
      kind: "set",
      name: OWNERS_SET,
      type: "ifname . ifname",
      comment: "owner tag . address tag, one per address (comment: owner)",
    });
    tx.add({ kind: "set", name: "bridge_pairs", type: "ifname . ifname" });
    tx.add({ kind: "set", name: "isolated_pairs", type: "ifname . ifname" });
    tx.add({ kind: "chain", name: "admin", comment: "operator rules, never flushed by cni-nft" });
    tx.add({ kind: "chain", name: "isolation" });
    tx.add({
      kind: "chain",
      name: "forward",
      type: "filter",
      hook: "forward",
      priority: NFT_PRIORITY,
      policy: "accept",
    });
    writeSkeletonRules(tx, mark);
  }

  async setUp(a: Attachment, conf: FirewallSpec): Promise<Effects> {
    const comment = nftOwnerComment(a);
    const hash = nftOwnerHash(a);
    const isolation = isolationOf(conf);
    const want = [...new Set(conf.addresses.map((x) => x.split("/")[0]!))].map((ip) =>
      addressElement(ip, comment),
    );
    let recorded = new Set<string>();
    if (want.length) {
      const before = recordedAddresses(this.records.read(hash));
      this.records.write(hash, { addresses: [...new Set([...before, ...want.map((e) => e.key[0]!)])] });
      if (this.hostForward) this.records.use(hostForwardUse(a.network), hash);
      recorded = new Set(want.filter((e) => before.includes(e.key[0]!)).map(keyText));
    }
    // The table and its rules are rewritten only when missing or made for another mark; an
    // address that exists (another container's stale one) fails `create` and is taken over after
    // a listing. An address an earlier ADD of this attachment recorded (a repeated ADD) is
    // asserted as its own instead (writeOwned), so a repeat lists nothing while it holds them.
    // The host's accept first (a chain the config names but the host lacks then changes
    // nothing), in the same lock as the elements, so a racing DEL of the network's last
    // container cannot remove it between the two.
    await withFlock(NFT_LOCK_FILE, async () => {
      await this.hostForward?.setUpMark(a.network, conf.mark);
      const fast = this.nft.newTransaction();
      fast.reset({ kind: "counter", name: markCounter(conf.mark) });
      writeSkeletonRules(fast, conf.mark);
      for (const e of want) writeOwned(fast, e, hash, recorded);
      if (isolation) this.isolationElements(fast, isolation);
      try {
        await this.nft.run(fast);
        return;
      } catch (e) {
        if (!isNotFound(e) && !isAlreadyExists(e)) throw e;
      }
      const listed = await this.listAddresses();
      const tx = this.nft.newTransaction();
      this.base(tx, conf.mark, await this.otherMarks(conf.mark));
      // A table of the layout before owner elements: every address gets its own.
      if (!listed.owners)
        for (const e of listed.elements) {
          const owner = ownerElementOf(e);
          if (owner) tx.add(owner);
        }
      const have = new Map(listed.elements.map((e) => [keyText(e), e]));
      for (const e of want) takeOver(tx, have, e, hash, comment);
      if (isolation) this.isolationElements(tx, isolation);
      await this.nft.run(tx);
    });
    return NO_EFFECTS;
  }

  /**
   * Both families' address sets (listed at once), and whether the owners set exists; no table
   * means no elements.
   */
  private async listAddresses(): Promise<{ elements: Element[]; owners: Element[] | undefined }> {
    const list = (set: string): Promise<Element[] | undefined> =>
      this.nft.listElements("set", set).then(
        (es) => es.map((e) => ({ ...e, set })),
        (e: unknown) => {
          if (isNotFound(e)) return undefined;
          throw e;
        },
      );
    const [v4, v6, owners] = await Promise.all([list(SETS[4]), list(SETS[6]), list(OWNERS_SET)]);
    return { elements: [...(v4 ?? []), ...(v6 ?? [])], owners };
  }

  /** Listed address elements whose comment `match` accepts. */
  private async owned(match: (comment: string) => boolean): Promise<Element[]> {
    return (await this.listAddresses()).elements.filter((e) => e.comment !== undefined && match(e.comment));
  }

  /**
   * Deletes listed elements (and their owner elements); then the network's host accept once
   * none of the network is left (GC: from the same listing).
   */
  private async removeOwned(network: string, match: (comment: string) => boolean): Promise<void> {
    await withFlock(NFT_LOCK_FILE, async () => {
      const listed = await this.listAddresses();
      const gone = listed.elements.filter((e) => e.comment !== undefined && match(e.comment));
      if (gone.length) {
        const tx = this.nft.newTransaction();
        for (const e of gone) disown(tx, e, listed.owners !== undefined);
        await this.nft.run(tx);
      }
      const net = nftNetworkHash(network);
      const left = listed.elements.some((e) => !gone.includes(e) && e.comment?.startsWith(net));
      if (this.hostForward && !left) await this.hostForward.removeMark(network);
    });
  }

  /**
   * The addresses prevResult or the record names, each deleted with its owner element without
   * reading (`deleteOwned`: one not its own is skipped, one a flushed set lost leaves its owner
   * element to delete); false when the table is not in this layout (no owners set) or nothing
   * is known.
   */
  private async removeKnown(a: Attachment, conf?: FirewallSpec): Promise<boolean> {
    const hash = nftOwnerHash(a);
    // A record is ours, but it is a file: its addresses pass the address check before nft.
    const ips = new Set(
      [...(conf?.addresses ?? []), ...recordedAddresses(this.records.read(hash))].map(
        (x) => x.split("/")[0]!,
      ),
    );
    if (ips.size === 0) return false;
    const keys = [...ips].map((ip) => addressElement(ip));
    const done = await withFlock(NFT_LOCK_FILE, () => deleteOwned(this.nft, hash, keys));
    return done !== undefined;
  }

  /**
   * Needs no prevResult: the addresses come from it or from the record, and are deleted without
   * a listing; a table of the previous layout (no owner elements), or an attachment nothing
   * names, is found by listing the sets. With hostForward, whether the network has any address
   * left takes a listing too.
   */
  async remove(a: Attachment, conf?: FirewallSpec): Promise<Effects> {
    const hash = nftOwnerHash(a);
    const done = await this.removeKnown(a, conf);
    // With hostForward, whether any address of the network is left decides about its accept: a
    // listing, but only when no other attachment of the network is noted (the last one, or a
    // host whose attachments predate the notes), so the usual DEL stays by key.
    const last = this.hostForward ? this.records.release(hostForwardUse(a.network), hash) : false;
    if (!done || last) await this.removeOwned(a.network, (c) => c.startsWith(hash));
    this.records.remove(hash);
    return NO_EFFECTS;
  }

  async gc(network: string, valid: readonly Attachment[]): Promise<Effects> {
    const stale = staleOwner(network, valid);
    for (const [name, owner] of this.records.uses())
      if (name === hostForwardUse(network) && stale(owner)) this.records.release(name, owner);
    await this.removeOwned(network, stale);
    for (const owner of this.records.owners()) if (stale(owner)) this.records.remove(owner);
    return NO_EFFECTS;
  }

  /** An element of its owner. */
  async holds(a: Attachment): Promise<boolean> {
    const hash = nftOwnerHash(a);
    return (await this.owned((c) => c.startsWith(hash))).length > 0;
  }

  async check(a: Attachment, conf: FirewallSpec): Promise<string[]> {
    const missing: string[] = [];
    let chains: string[];
    try {
      chains = await this.nft.list("chains");
    } catch (e) {
      if (isNotFound(e)) return [`nftables table inet ${NFT_TABLE}`];
      throw e;
    }
    if (!chains.includes("admin")) missing.push(`chain admin in table inet ${NFT_TABLE}`);
    const rules = new Map<string, Rule[]>();
    for (const ch of ["forward", "isolation"])
      if (chains.includes(ch)) rules.set(ch, await this.nft.listRules(ch, { text: true }));
    // The shared rules as they should be: a flushed table keeps its chains and sets, not its rules.
    missing.push(...missingRules({ chains, rules }, skeletonRules(conf.mark), `inet ${NFT_TABLE}`));
    const comment = nftOwnerComment(a);
    const listed = await this.listAddresses();
    const mine = new Set(listed.elements.filter((e) => e.comment === comment).map((e) => e.key[0]));
    const tags = new Set((listed.owners ?? []).map(tagText));
    for (const x of conf.addresses) {
      const e = addressElement(x);
      const ip = e.key[0]!;
      if (!mine.has(ip)) missing.push(`element ${ip} of set ${e.set} in table inet ${NFT_TABLE}`);
      else if (!tags.has(tagText(ownerElement(e, nftOwnerHash(a)))))
        missing.push(`the owner element of ${ip} in set ${OWNERS_SET} of table inet ${NFT_TABLE}`);
    }
    if (this.hostForward) missing.push(...(await this.hostForward.missingMark(a.network, conf.mark)));
    return missing;
  }

  private isolationElements(tx: Transaction, s: IsolationSpec): void {
    const b = ifname(s.bridge).text;
    tx.add({ kind: "element", set: "bridges", key: [b] });
    tx.add({ kind: "element", set: "bridge_pairs", key: [b, b] });
    if (s.isolated) tx.add({ kind: "element", set: "isolated_pairs", key: [b, b] });
  }

  /** The table with the bridge's isolation, for the firewalld backend on a host without iptables. */
  async setUpIsolation(s: IsolationSpec): Promise<void> {
    await withFlock(NFT_LOCK_FILE, async () => {
      const tx = this.nft.newTransaction();
      this.base(tx, s.mark, await this.otherMarks(s.mark));
      this.isolationElements(tx, s);
      await this.nft.run(tx);
    });
  }

  /** The bridge's elements in the isolation sets. */
  private async bridgeElements(bridge: string): Promise<Element[]> {
    const out: Element[] = [];
    for (const set of ["bridges", "bridge_pairs", "isolated_pairs"])
      try {
        for (const e of await this.nft.listElements("set", set))
          if (e.key.every((k) => k === bridge)) out.push({ ...e, set });
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    return out;
  }

  async holdsIsolation(s: IsolationSpec): Promise<boolean> {
    return (await this.bridgeElements(s.bridge)).length > 0;
  }

  /** The bridge's isolation elements, for a move to another framework (never on DEL). */
  async removeIsolation(s: IsolationSpec): Promise<void> {
    await withFlock(NFT_LOCK_FILE, async () => {
      const gone = await this.bridgeElements(s.bridge);
      if (gone.length === 0) return;
      const tx = this.nft.newTransaction();
      for (const e of gone) tx.delete({ kind: "element", set: e.set!, key: e.key });
      await this.nft.run(tx);
    });
  }

  async checkIsolation(s: IsolationSpec): Promise<string[]> {
    const missing: string[] = [];
    const want: Array<[string, number]> = [
      ["bridges", 1],
      ["bridge_pairs", 2],
      ...(s.isolated ? ([["isolated_pairs", 2]] as Array<[string, number]>) : []),
    ];
    for (const [set, n] of want) {
      let elems: Element[] = [];
      try {
        elems = await this.nft.listElements("set", set);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      const ok = elems.some((e) => e.key.length === n && e.key.every((k) => k === s.bridge));
      if (!ok) missing.push(`bridge ${s.bridge} in set ${set} of table inet ${NFT_TABLE}`);
    }
    return missing;
  }
}

/**
 * Bridge isolation alone: for the firewalld backend where iptables is missing, and for
 * `cni-nft migrate`, which moves it. The bridge's elements stay when a container goes (other
 * containers may use it; upstream's choice too); only a move removes them.
 */
export class NftablesIsolation implements HostStateBackend<IsolationSpec> {
  readonly component = "isolation";
  readonly name = "nftables";
  constructor(private readonly table: NftablesFirewall) {}

  present(): boolean {
    return this.table.present();
  }

  async setUp(_a: Attachment, s: IsolationSpec): Promise<Effects> {
    await this.table.setUpIsolation(s);
    return NO_EFFECTS;
  }

  check(_a: Attachment, s: IsolationSpec): Promise<string[]> {
    return this.table.checkIsolation(s);
  }

  holds(_a: Attachment, s: IsolationSpec): Promise<boolean> {
    return this.table.holdsIsolation(s);
  }

  /** The bridge's isolation, for a move to another framework (the plugin's DEL never calls it). */
  async remove(_a: Attachment, s?: IsolationSpec): Promise<Effects> {
    if (s) await this.table.removeIsolation(s);
    return NO_EFFECTS;
  }

  gc(): Promise<Effects> {
    return Promise.resolve(NO_EFFECTS);
  }
}
