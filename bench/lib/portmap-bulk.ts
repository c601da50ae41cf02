/**
 * The nftables portmap containers of the benchmarks written in bulk: one nft run in the backend's
 * exact layout (bench/portmap.ts with BENCH_PORTMAP_FILL=bulk, bench/portmap-steps.ts).
 * Container i is the one bench/lib/fill.ts adds through the plugin.
 */
import type { PortMapConf } from "../../plugins/meta/portmap/config.js";
import {
  desired,
  ownTransaction,
  staticTransaction,
} from "../../plugins/meta/portmap/portmap_nftables_layout.js";
import { nftOwnerHash } from "../../src/cni/attachment.js";
import type { Interface } from "../../src/nftables/index.js";
import { fillerAddr, fillerPort } from "./fill.js";

/**
 * One container with one TCP mapping to port 80, on network benchnet (10.99.0.0/16); with
 * `conditions`, those as its conditionsV4.
 */
export function benchConf(
  containerId: string,
  address: string,
  hostPort: number,
  snat = true,
  conditions: string[] = [],
): PortMapConf {
  return {
    network: "benchnet",
    containerId,
    ifname: "eth0",
    snat,
    masqAll: false,
    markMasqBit: 13,
    conditionsV4: conditions,
    conditionsV6: [],
    mappings: [{ hostPort, containerPort: 80, protocol: "tcp" }],
    containers: [{ family: 4, address, subnet: "10.99.0.0/16" }],
  };
}

/** Containers from..to-1 (and the skeleton) in one transaction on `nft` (table inet cni_nft_portmap). */
export async function bulkFill(
  nft: Interface,
  from: number,
  to: number,
  snat = true,
  conditions: string[] = [],
): Promise<void> {
  const tx = nft.newTransaction();
  staticTransaction(tx);
  for (let i = from; i < to; i++) {
    const c = benchConf(`fill${i}`, fillerAddr(i), fillerPort(i), snat, conditions);
    ownTransaction(tx, nftOwnerHash(c), desired(c), "add");
  }
  await nft.run(tx);
}
