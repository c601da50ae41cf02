/**
 * The nftables backend (cni-nft's own; upstream has none): one table, `inet cni_nft_firewall`,
 * laid out in firewall_nftables_layout.ts (bridge isolation: firewall_nftables_isolation.ts).
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
  isAlreadyExists,
  isNotFound,
  missingRules,
  type Element,
  type Interface,
  type Rule,
} from "../../../src/nftables/index.js";
import { isolationOf, recordedAddresses, type FirewallSpec } from "./firewall_backend.js";
import type { HostForwardRules } from "./firewall_host_forward.js";
import { isolationElements } from "./firewall_nftables_isolation.js";
import {
  NFT_LOCK_FILE,
  NFT_TABLE,
  SETS,
  addressElement,
  markCounter,
  otherMarks,
  skeletonRules,
  writeSkeletonRules,
  writeTable,
} from "./firewall_nftables_layout.js";

/** The table and its lock, for tests and benches that name them. */
export { NFT_LOCK_FILE, NFT_TABLE } from "./firewall_nftables_layout.js";

/** This backend's records (src/hoststate/records.ts): the addresses an ADD is about to accept. */
export const RECORDS = "firewall-nftables";

/** An owner element's key without quotes (nft lists strings without them). */
const tagText = (e: Element): string => e.key.map((k) => k.replace(/^"|"$/g, "")).join(" . ");

/** The note of use (src/hoststate/records.ts) of a network's hostForward accept. */
function hostForwardUse(network: string): string {
  return `hostforward-${nftNetworkHash(network)}`;
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
      if (isolation) isolationElements(fast, isolation);
      try {
        await this.nft.run(fast);
        return;
      } catch (e) {
        if (!isNotFound(e) && !isAlreadyExists(e)) throw e;
      }
      const listed = await this.listAddresses();
      const tx = this.nft.newTransaction();
      writeTable(tx, conf.mark, await otherMarks(this.nft, conf.mark));
      // A table of the layout before owner elements: every address gets its own.
      if (!listed.owners)
        for (const e of listed.elements) {
          const owner = ownerElementOf(e);
          if (owner) tx.add(owner);
        }
      const have = new Map(listed.elements.map((e) => [keyText(e), e]));
      for (const e of want) takeOver(tx, have, e, hash, comment);
      if (isolation) isolationElements(tx, isolation);
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
}
