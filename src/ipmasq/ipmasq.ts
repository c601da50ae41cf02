/**
 * IP masquerade for the bridge and ptp plugins, with an iptables backend that writes exactly what
 * upstream's writes and an nftables backend in a table of its own that also reads, checks and
 * removes upstream's nftables layout (docs/bridge-ptp.md). DEL and GC always clean both backends.
 */

/** What one attachment masquerades. */
export interface MasqSpec {
  /** Container addresses with their prefix length, e.g. `10.88.0.5/24`. */
  addresses: string[];
}

export const COMPONENT = "masquerade";
