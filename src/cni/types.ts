/**
 * CNI spec types, 0.1.0 – 1.1.0. Plugins work with the current form (`Result`, 1.1.0); results of
 * other versions exist only at the edges (prevResult in, result out) and are converted by
 * `version.ts`.
 */

/** Result interface entry (0.3.0+; mtu/socketPath/pciID since 1.1.0). */
export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

/** Result IP entry in current form (no `version`; 0.3.x/0.4.0 carry it). */
export interface IPConfig {
  /** Index into `interfaces`. */
  interface?: number;
  /** CIDR: address with prefix length, e.g. "10.1.2.3/24". */
  address: string;
  gateway?: string;
}

/** Route (mtu/advmss/priority/table/scope since 1.1.0). */
export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** A result in current (1.1.0) form; `cniVersion` is the version it will be printed in. */
export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: Route[];
  dns?: DNS;
}

/** 0.3.0/0.3.1/0.4.0 IP entry. */
export interface IPConfig04 {
  version: "4" | "6";
  interface?: number;
  address: string;
  gateway?: string;
}

export interface Result04 {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IPConfig04[];
  routes?: Route[];
  dns?: DNS;
}

/** 0.1.0/0.2.0 IP config. */
export interface IPConfig02 {
  ip: string;
  gateway?: string;
  routes?: { dst: string; gw?: string }[];
}

export interface Result02 {
  cniVersion: string;
  ip4?: IPConfig02;
  ip6?: IPConfig02;
  dns?: DNS;
}

/** runtimeConfig.portMappings entry (capability "portMappings"). */
export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol?: string;
  hostIP?: string;
}

/** One range of an IPAM range set (also runtimeConfig.ipRanges entries). */
export interface IpRange {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

export interface BandwidthEntry {
  ingressRate?: number;
  ingressBurst?: number;
  egressRate?: number;
  egressBurst?: number;
}

/** runtimeConfig as the conventions document defines it; unknown keys are kept. */
export interface RuntimeConfig {
  portMappings?: PortMapping[];
  ips?: string[];
  mac?: string;
  ipRanges?: IpRange[][];
  bandwidth?: BandwidthEntry;
  dns?: { servers?: string[]; searches?: string[]; options?: string[] };
  [key: string]: unknown;
}

/** The keys every network configuration may carry (plugin-specific keys come on top). */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  capabilities?: Record<string, boolean>;
  ipam?: { type?: string; [key: string]: unknown };
  dns?: DNS;
  args?: { cni?: { ips?: string[]; labels?: { key: string; value: string }[]; [k: string]: unknown } };
  runtimeConfig?: RuntimeConfig;
  /** Raw prevResult as sent; the parsed form is `CmdArgs.prevResult`. */
  prevResult?: unknown;
  [key: string]: unknown;
}

/** An entry of `cni.dev/valid-attachments` as the runtime sends it (GC); plugins get {@link Attachment}. */
export interface ValidAttachmentEntry {
  containerID: string;
  ifname: string;
}

export type Command = "ADD" | "DEL" | "CHECK" | "GC" | "STATUS" | "VERSION";
