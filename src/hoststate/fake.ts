/** A host for tests without root: a fake nftables ruleset, a fake iptables, chosen tools. */
import { FakeNFTables, FakeRuleset } from "../nftables/fake.js";
import type { Family } from "../nftables/index.js";
import { FakeIptables } from "../iptables/fake.js";
import type { Host, HostTools } from "./index.js";
import { memoryRecords, type AttachmentRecords } from "./records.js";

export class FakeHost implements Host {
  readonly ruleset = new FakeRuleset();
  readonly iptables: FakeIptables;
  readonly tools: HostTools;
  /** Tools on PATH (default: nft, iptables and ip6tables with -save and -restore). */
  readonly installed: Set<string>;

  constructor(opts: { tools?: readonly string[] } = {}) {
    this.installed = new Set(
      opts.tools ?? [
        "nft",
        "iptables",
        "iptables-save",
        "iptables-restore",
        "ip6tables",
        "ip6tables-save",
        "ip6tables-restore",
      ],
    );
    this.tools = { has: (t) => this.installed.has(t) };
    const families = ([4, 6] as const).filter((f) =>
      this.installed.has(f === 4 ? "iptables-restore" : "ip6tables-restore"),
    );
    this.iptables = new FakeIptables({ families });
  }

  private readonly recordStores = new Map<string, ReturnType<typeof memoryRecords>>();

  records(component: string): AttachmentRecords & { readonly files: Map<string, string> } {
    let r = this.recordStores.get(component);
    if (!r) this.recordStores.set(component, (r = memoryRecords()));
    return r;
  }

  nft(family: Family, table: string): FakeNFTables {
    return this.ruleset.table(family, table);
  }

  /** Every nftables table and every iptables table touched, as text to compare with. */
  async dump(): Promise<string> {
    return (await this.ruleset.dumpAll()) + this.iptables.saveAll();
  }
}
