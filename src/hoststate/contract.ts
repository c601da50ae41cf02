/**
 * One contract for what a plugin keeps on the host per attachment (masquerade, spoof check,
 * portmap, firewall, and whatever comes next), whatever technology holds it. A component has one
 * backend per technology; every backend answers the same four questions for an attachment, so a
 * caller can drive any component generically: set up on one backend, check, remove from another
 * (see docs/architecture.md, "Host state").
 */
import type { Attachment } from "../cni/attachment.js";
import type { SkeletonPlan } from "../nftables/index.js";

export type BackendName = "iptables" | "nftables" | "firewalld";

/** What a change asks of the host afterwards, as data: the caller acts on it (see settle()). */
export interface Effects {
  /** UDP ports whose conntrack entries must go, so packets see the new mapping (portmap). */
  udpPorts?: number[];
}

export const NO_EFFECTS: Effects = Object.freeze({});

export function mergeEffects(all: readonly Effects[]): Effects {
  const udp = [...new Set(all.flatMap((e) => e.udpPorts ?? []))];
  return udp.length ? { udpPorts: udp } : {};
}

/**
 * One component's state on one technology. `Spec` is what the attachment needs (addresses,
 * mappings, MAC, ...), built from the config and prevResult by the component's plugin.
 */
export interface HostStateBackend<Spec> {
  /** `masquerade`, `spoofcheck`, `portmap`, `firewall`, ... */
  readonly component: string;
  readonly name: BackendName;
  /** Whether the tools this backend drives are on the host (DEL and GC use every present one). */
  present(): boolean | Promise<boolean>;
  /** Creates or repairs the attachment's state; repeated, it changes nothing more. */
  setUp(a: Attachment, spec: Spec): Promise<Effects>;
  /** What is missing or wrong, in words; empty when the state is whole. */
  check(a: Attachment, spec: Spec): Promise<string[]>;
  /**
   * Whether this host holds any of the attachment's state here, whole or partial: what a move
   * between backends must remove, and what must be cleared before a partial state is set up again.
   * Backends whose state names its owner answer from the owner alone; the others (upstream's
   * iptables firewall rules, firewalld sources) from the spec's addresses.
   */
  holds(a: Attachment, spec: Spec): Promise<boolean>;
  /**
   * Removes the attachment's state; succeeds when it is gone already. `spec` is what DEL knows
   * (it may lack prevResult): backends that find their state by owner need none.
   */
  remove(a: Attachment, spec?: Spec): Promise<Effects>;
  /** Removes the state of attachments of `network` not in `valid`, where the backend can tell. */
  gc(network: string, valid: readonly Attachment[]): Promise<Effects>;
  /**
   * nftables backends: `setUp` as transactions, so a plugin that sets up several components
   * pays one nft run for all of them ({@link setUpAll}). Planning may read the table (what an
   * earlier ADD left is replaced, not added to).
   */
  plan?(a: Attachment, spec: Spec): Promise<SkeletonPlan>;
}

/** A backend with the spec of one attachment: what a plugin sets up, checks and removes. */
export interface Bound {
  readonly backend: HostStateBackend<unknown>;
  readonly spec: unknown;
}

export function bind<S>(backend: HostStateBackend<S>, spec: S): Bound {
  return { backend, spec };
}
