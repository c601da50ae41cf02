/** portmap's backends over a host (src/hoststate): what the plugin and `cni-nft migrate` drive. */
import type { Host, HostStateBackend } from "../../../src/hoststate/index.js";
import type { PortMapSpec } from "./config.js";
import { RECORDS as IPTABLES_RECORDS, IptablesPortMapper } from "./portmap_iptables.js";
import { NFT_TABLE, NftablesPortMapper } from "./portmap_nftables.js";

export { IptablesPortMapper, NftablesPortMapper };

export function portmapBackends(host: Host): HostStateBackend<PortMapSpec>[] {
  return [
    new IptablesPortMapper(host.iptables, host.records(IPTABLES_RECORDS)),
    new NftablesPortMapper(host.nft("inet", NFT_TABLE), host.tools, host.records("portmap")),
  ];
}
