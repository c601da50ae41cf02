/**
 * Masquerade, one component with an iptables and an nftables backend (src/hoststate). ADD uses
 * the configured one, else the host's default; DEL, GC look at both, so a container set up by
 * the other backend (or by upstream) is still cleaned.
 */
import type { Host } from "../hoststate/host.js";
import type { HostStateBackend } from "../hoststate/contract.js";
import { IPTABLES_MASQ_RECORDS, IptablesMasq } from "./ipmasq_iptables.js";
import { MASQ_TABLE, NftablesMasq } from "./ipmasq_nftables.js";
import { COMPONENT, type MasqSpec } from "./ipmasq.js";

export * from "./ipmasq.js";
export { IptablesMasq, NftablesMasq };
export { MASQ_LOCK_FILE, UPSTREAM_MASQ_CHAIN, UPSTREAM_MASQ_TABLE } from "./ipmasq_nftables.js";
export { MASQ_TABLE };

/** Every masquerade backend, over this host. */
export function masqueradeBackends(host: Host): HostStateBackend<MasqSpec>[] {
  return [
    new IptablesMasq(host.iptables, host.records(IPTABLES_MASQ_RECORDS)),
    new NftablesMasq(host.nft("inet", MASQ_TABLE), host.tools, host.records(COMPONENT)),
  ];
}
