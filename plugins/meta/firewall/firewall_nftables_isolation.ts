/**
 * Bridge isolation in the nftables backend's table (firewall_nftables_layout.ts): a bridge with
 * ingressPolicy same-bridge or isolated is elements of the sets `bridges`, `bridge_pairs` and
 * `isolated_pairs`, which the chain `isolation` matches. The firewall's ADD writes them with the
 * attachment's addresses (isolationElements); NftablesIsolation is the component on its own: for
 * the firewalld backend where iptables is missing, and for `cni-nft migrate`, which moves it.
 * The bridge's elements stay when a container goes (other containers may use it; upstream's
 * choice too); only a move removes them.
 */
import { withFlock } from "../../../src/cni/index.js";
import type { Attachment } from "../../../src/cni/attachment.js";
import {
  NO_EFFECTS,
  type Effects,
  type HostStateBackend,
  type HostTools,
} from "../../../src/hoststate/index.js";
import {
  ifname,
  isNotFound,
  type Element,
  type Interface,
  type Transaction,
} from "../../../src/nftables/index.js";
import type { IsolationSpec } from "./firewall_backend.js";
import { NFT_LOCK_FILE, NFT_TABLE, otherMarks, writeTable } from "./firewall_nftables_layout.js";

const ISOLATION_SETS = ["bridges", "bridge_pairs", "isolated_pairs"] as const;

/** The bridge's elements in the isolation sets, added to `tx`. */
export function isolationElements(tx: Transaction, s: IsolationSpec): void {
  const b = ifname(s.bridge).text;
  tx.add({ kind: "element", set: "bridges", key: [b] });
  tx.add({ kind: "element", set: "bridge_pairs", key: [b, b] });
  if (s.isolated) tx.add({ kind: "element", set: "isolated_pairs", key: [b, b] });
}

export class NftablesIsolation implements HostStateBackend<IsolationSpec> {
  readonly component = "isolation";
  readonly name = "nftables";
  /** `nft`: the Interface of table inet cni_nft_firewall. */
  constructor(
    private readonly nft: Interface,
    private readonly tools: HostTools,
  ) {}

  present(): boolean {
    return this.tools.has("nft");
  }

  /** The table with the bridge's isolation. */
  async setUp(_a: Attachment, s: IsolationSpec): Promise<Effects> {
    await withFlock(NFT_LOCK_FILE, async () => {
      const tx = this.nft.newTransaction();
      writeTable(tx, s.mark, await otherMarks(this.nft, s.mark));
      isolationElements(tx, s);
      await this.nft.run(tx);
    });
    return NO_EFFECTS;
  }

  async check(_a: Attachment, s: IsolationSpec): Promise<string[]> {
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

  async holds(_a: Attachment, s: IsolationSpec): Promise<boolean> {
    return (await this.bridgeElements(s.bridge)).length > 0;
  }

  /** The bridge's isolation, for a move to another framework (the plugin's DEL never calls it). */
  async remove(_a: Attachment, s?: IsolationSpec): Promise<Effects> {
    if (!s) return NO_EFFECTS;
    await withFlock(NFT_LOCK_FILE, async () => {
      const gone = await this.bridgeElements(s.bridge);
      if (gone.length === 0) return;
      const tx = this.nft.newTransaction();
      for (const e of gone) tx.delete({ kind: "element", set: e.set!, key: e.key });
      await this.nft.run(tx);
    });
    return NO_EFFECTS;
  }

  gc(): Promise<Effects> {
    return Promise.resolve(NO_EFFECTS);
  }

  /** The bridge's elements in the isolation sets. */
  private async bridgeElements(bridge: string): Promise<Element[]> {
    const out: Element[] = [];
    for (const set of ISOLATION_SETS)
      try {
        for (const e of await this.nft.listElements("set", set))
          if (e.key.every((k) => k === bridge)) out.push({ ...e, set });
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
    return out;
  }
}
