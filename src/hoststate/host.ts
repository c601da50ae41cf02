/**
 * The host the backends change: its tools, its nftables tables, its iptables. Plugin mains take
 * {@link systemHost}; tests take a {@link FakeHost} (./fake.ts) and compare its dumps.
 */
import { NFTables, type Family, type Interface } from "../nftables/index.js";
import { SystemIptables, systemIptables, type IptablesRunner } from "../iptables/iptables.js";
import { systemRunner, type Runner } from "../process/index.js";
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

/** The host the plugin runs on (or the namespace at `netns`: nft and iptables both run there). */
export function systemHost(opts: { netns?: string } = {}): Host {
  const { netns } = opts;
  const inNetns: Runner | undefined = netns
    ? { run: (cmd) => systemRunner.run({ ...cmd, netns }) }
    : undefined;
  return {
    tools: systemTools,
    nft: (family, table) => new NFTables({ family, table, ...opts }),
    iptables: inNetns ? new SystemIptables(inNetns) : systemIptables,
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
