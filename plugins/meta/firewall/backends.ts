/** The firewall plugin's backends over a host (src/hoststate): what the plugin and `cni-nft migrate` drive. */
import type { Host, HostStateBackend } from "../../../src/hoststate/index.js";
import type { FirewallSpec, HostForward, IsolationSpec } from "./firewall_backend.js";
import { HostForwardRules } from "./firewall_host_forward.js";
import { RECORDS as FIREWALLD_RECORDS, FirewalldFirewall } from "./firewall_firewalld.js";
import { RECORDS as IPTABLES_RECORDS, IptablesFirewall, IptablesIsolation } from "./firewall_iptables.js";
import { RECORDS as NFTABLES_RECORDS, NftablesFirewall } from "./firewall_nftables.js";
import { NftablesIsolation } from "./firewall_nftables_isolation.js";
import { NFT_TABLE } from "./firewall_nftables_layout.js";

export { FirewalldFirewall, IptablesFirewall, IptablesIsolation, NftablesFirewall, NftablesIsolation };

/**
 * The accept rules of an attachment: iptables, nftables, firewalld. `hostForward` is the
 * network's config of it (a network's setting: GC, which has no spec, needs it too).
 */
export function firewallBackends(host: Host, hostForward?: HostForward): HostStateBackend<FirewallSpec>[] {
  const hf = hostForward && new HostForwardRules(host, hostForward);
  return [
    new IptablesFirewall(host.iptables, host.records(IPTABLES_RECORDS), hf),
    new NftablesFirewall(host.nft("inet", NFT_TABLE), host.tools, host.records(NFTABLES_RECORDS), hf),
    new FirewalldFirewall(undefined, undefined, host.records(FIREWALLD_RECORDS)),
  ];
}

/** Bridge isolation on its own (the firewalld backend has none): iptables, nftables. */
export function isolationBackends(host: Host): HostStateBackend<IsolationSpec>[] {
  return [
    new IptablesIsolation(host.iptables),
    new NftablesIsolation(host.nft("inet", NFT_TABLE), host.tools),
  ];
}
