/**
 * The host the backends change: its tools, its nftables tables, its iptables. Plugin mains take
 * {@link systemHost}; tests take a {@link FakeHost} (./fake.ts) and compare its dumps.
 */
import { NFTables, type Family, type Interface } from "../nftables/index.js";
import { systemIptables, type IptablesRunner } from "../iptables/iptables.js";
import { systemTools, type HostTools } from "./select.js";
import { fileRecords, type AttachmentRecords } from "./records.js";

export interface Host {
  readonly tools: HostTools;
  /** One table's nftables Interface; all of one host share a connection (runAll across them). */
  nft(family: Family, table: string): Interface;
  readonly iptables: IptablesRunner;
  /** Per-attachment records of a component (./records.ts). */
  records(component: string): AttachmentRecords;
}

/** The host the plugin runs on (or the namespace at `netns`). */
export function systemHost(opts: { netns?: string } = {}): Host {
  return {
    tools: systemTools,
    nft: (family, table) => new NFTables({ family, table, ...opts }),
    iptables: systemIptables,
    records: (component) =>
      fileRecords(
        component,
        opts.netns === undefined
          ? undefined
          : opts.netns.includes("/")
            ? opts.netns
            : `/run/netns/${opts.netns}`,
      ),
  };
}
