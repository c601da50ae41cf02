/** Counting what a backend asks nft (reads only), for tests that an operation never lists. */
import type { Host } from "../../src/hoststate/index.js";

/** Every read method of the nftables Interface. */
const READS = ["listElements", "listTable", "list", "listRules", "listCounters", "getElements", "listTables"];

/**
 * Wraps the read methods of `nft` (an Interface: the fake's, or the real one) in place and
 * returns `reads`, where each call's method name is pushed (followed by ` <label>` when given).
 * Reads through `forTable` (another table) are not counted.
 */
export function spyReads(nft: object, reads: string[] = [], label?: string): string[] {
  const methods = nft as Record<string, (...args: unknown[]) => unknown>;
  for (const m of READS) {
    const orig = methods[m]!.bind(nft);
    methods[m] = (...args: unknown[]) => {
      reads.push(label === undefined ? m : `${m} ${label}`);
      return orig(...args);
    };
  }
  return reads;
}

/** `host` with the reads of every table's Interface it hands out counted in `reads` ("<method> <table>"). */
export function readCountingHost(host: Host, reads: string[]): Host {
  return {
    tools: host.tools,
    iptables: host.iptables,
    records: (component) => host.records(component),
    nft: (family, table) => {
      const nft = host.nft(family, table);
      spyReads(nft, reads, table);
      return nft;
    },
  };
}
