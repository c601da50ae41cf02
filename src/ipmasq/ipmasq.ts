/**
 * IP masquerade for the bridge and ptp plugins, with an iptables and an nftables backend that
 * write exactly what upstream's plugins write, so a container set up by either is torn down by
 * either. DEL and GC always clean both backends.
 */
import { createHash } from "node:crypto";

export type MasqBackendName = "iptables" | "nftables";

export interface MasqInstance {
  network: string;
  containerId: string;
  ifname: string;
}

export interface MasqSetup extends MasqInstance {
  /** Container addresses with their prefix length, e.g. `10.88.0.5/24`. */
  addresses: string[];
}

export interface Attachment {
  containerId: string;
  ifname: string;
}

export interface IpMasqBackend {
  readonly name: MasqBackendName;
  setup(s: MasqSetup): Promise<void>;
  teardown(i: MasqInstance): Promise<void>;
  gc(network: string, valid: Attachment[]): Promise<void>;
  /** What is missing for this instance, or an empty list. */
  check(s: MasqSetup): Promise<string[]>;
}

export function sha512Hex(s: string): string {
  return createHash("sha512").update(s).digest("hex");
}

/** `CNI-` + 24 hex digits of sha512(network + containerID), as upstream's iptables chains. */
export function iptablesChainName(network: string, containerId: string, prefix = ""): string {
  return (`CNI-${prefix}` + sha512Hex(network + containerId)).slice(0, 28);
}

/** Upstream's iptables comment: `name: "<net>" id: "<containerID>"` (Go %q quoting). */
export function iptablesComment(network: string, containerId: string): string {
  return `name: ${JSON.stringify(network)} id: ${JSON.stringify(containerId)}`;
}

export function nftNetworkHash(network: string): string {
  return sha512Hex(network).slice(0, 16);
}

export function nftInstanceHash(i: MasqInstance): string {
  return `${nftNetworkHash(i.network)}-${sha512Hex(`${i.ifname}:${i.containerId}`).slice(0, 16)}`;
}

/** Upstream's nftables comment: instance hash, then a readable description, cut to 128 bytes. */
export function nftComment(i: MasqInstance): string {
  const strip = (s: string): string => s.replace(/"/g, "");
  const c = `${nftInstanceHash(i)}, net: ${strip(i.network)}, if: ${strip(i.ifname)}, id: ${strip(i.containerId)}`;
  return Buffer.from(c)
    .subarray(0, 128)
    .toString("utf8")
    .replace(/\uFFFD+$/, "");
}
