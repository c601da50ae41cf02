/**
 * IP masquerade for the bridge and ptp plugins, with an iptables and an nftables backend that
 * write exactly what upstream's plugins write, so a container set up by either is torn down by
 * either. DEL and GC always clean both backends.
 */

/** What one attachment masquerades. */
export interface MasqSpec {
  /** Container addresses with their prefix length, e.g. `10.88.0.5/24`. */
  addresses: string[];
}

export const COMPONENT = "masquerade";
