/**
 * bridge's MAC spoof check, on the project's nftables library (upstream uses a second library
 * for it). Same objects as upstream so either side can tear down the other's: table `bridge
 * nat`, base chain `PREROUTING` (filter, prerouting, -300) with `iifname <host veth> jump
 * cni-br-iface-<id>`, that chain jumping to `cni-br-iface-<id>-mac`, which returns for the
 * container's MAC and drops the rest; every rule commented `macspoofchk-<id>`.
 */
import { parseMac } from "../address/index.js";
import { NFTables, concat, ifname, isNotFound, type Transaction } from "../nftables/index.js";

const TABLE = "nat";
const BASE_CHAIN = "PREROUTING";

export class SpoofChecker {
  readonly nft: NFTables;
  constructor(
    /** `<containerID>-<ifname>`, as upstream's uniqueID. */
    readonly refId: string,
    opts: { netns?: string } = {},
  ) {
    this.nft = new NFTables({ family: "bridge", table: TABLE, ...opts });
  }

  get ifaceChain(): string {
    return `cni-br-iface-${this.refId}`;
  }
  get macChain(): string {
    return `${this.ifaceChain}-mac`;
  }
  get comment(): string {
    return `macspoofchk-${this.refId}`;
  }

  /**
   * One transaction: declare, flush our chains, add the rules (upstream needs two runs). Without
   * `skeleton` the table and base chain are assumed (see applyWithSkeleton).
   */
  setupTransaction(hostIface: string, mac: string, skeleton = true): Transaction {
    const canonical = parseMac(mac);
    if (canonical === undefined) throw new Error(`invalid MAC address ${JSON.stringify(mac)}`);
    const tx = this.nft.newTransaction();
    if (skeleton) {
      tx.add({ kind: "table" });
      tx.add({
        kind: "chain",
        name: BASE_CHAIN,
        type: "filter",
        hook: "prerouting",
        priority: -300,
        policy: "accept",
      });
    }
    tx.add({ kind: "chain", name: this.ifaceChain });
    tx.add({ kind: "chain", name: this.macChain });
    tx.flush({ kind: "chain", name: this.ifaceChain });
    tx.flush({ kind: "chain", name: this.macChain });
    tx.add({
      kind: "rule",
      chain: BASE_CHAIN,
      rule: concat("iifname", ifname(hostIface), "jump", this.ifaceChain),
      comment: this.comment,
    });
    tx.add({ kind: "rule", chain: this.ifaceChain, rule: `jump ${this.macChain}`, comment: this.comment });
    tx.add({
      kind: "rule",
      chain: this.macChain,
      rule: `ether saddr ${canonical} return`,
      comment: this.comment,
    });
    tx.add({ kind: "rule", chain: this.macChain, rule: "drop", comment: this.comment });
    return tx;
  }

  /** Handles of our jump rules in the base chain. */
  private async baseRules(): Promise<number[]> {
    try {
      const rules = await this.nft.listRules(BASE_CHAIN, { text: true });
      return rules
        .filter((r) => r.comment === this.comment || r.rule.endsWith(`jump ${this.ifaceChain}`))
        .map((r) => r.handle!)
        .filter((h) => h !== undefined);
    } catch (e) {
      if (isNotFound(e)) return [];
      throw e;
    }
  }

  async teardown(): Promise<void> {
    const handles = await this.baseRules();
    const tx = this.nft.newTransaction();
    for (const h of handles) tx.delete({ kind: "rule", chain: BASE_CHAIN, rule: "", handle: h });
    // Flush first: a chain that still has rules cannot be deleted.
    let chains: string[] = [];
    try {
      chains = await this.nft.list("chains");
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    for (const c of [this.ifaceChain, this.macChain])
      if (chains.includes(c)) tx.flush({ kind: "chain", name: c });
    for (const c of [this.ifaceChain, this.macChain])
      if (chains.includes(c)) tx.delete({ kind: "chain", name: c });
    if (tx.size === 0) return;
    await this.nft.run(tx);
  }

  /** What is missing, for CHECK. */
  async check(mac: string): Promise<string[]> {
    const missing: string[] = [];
    if ((await this.baseRules()).length === 0)
      missing.push(`spoof-check jump rule in bridge ${TABLE} ${BASE_CHAIN}`);
    try {
      const rules = await this.nft.listRules(this.macChain, { text: true });
      if (!rules.some((r) => r.rule.includes(`ether saddr ${mac.toLowerCase()} return`)))
        missing.push(`spoof-check rule allowing ${mac} in chain ${this.macChain}`);
    } catch (e) {
      if (!isNotFound(e)) throw e;
      missing.push(`spoof-check chain ${this.macChain}`);
    }
    return missing;
  }
}

/** Chains of spoof checks in the bridge nat table, by refId, for GC. */
export async function listSpoofCheckRefIds(): Promise<string[]> {
  const nft = new NFTables({ family: "bridge", table: TABLE });
  try {
    return (await nft.list("chains"))
      .filter((c) => c.startsWith("cni-br-iface-") && !c.endsWith("-mac"))
      .map((c) => c.slice("cni-br-iface-".length));
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}
