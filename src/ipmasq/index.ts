/**
 * Choosing and running the masquerade backends. ADD uses one backend: the configured one, else
 * iptables unless it is missing and nft is present (as upstream decides). DEL, GC and CHECK look
 * at both, so a container set up by the other backend (or by upstream) is still cleaned.
 */
import { IptablesMasq } from "./ipmasq_iptables.js";
import { NftablesMasq } from "./ipmasq_nftables.js";
import type { Attachment, IpMasqBackend, MasqBackendName, MasqInstance, MasqSetup } from "./ipmasq.js";
import { onPath } from "../iptables/iptables.js";

export * from "./ipmasq.js";
export { IptablesMasq, NftablesMasq };

export const MASQ_BACKENDS: readonly MasqBackendName[] = ["iptables", "nftables"];

export function defaultMasqBackend(): MasqBackendName {
  if (!onPath("iptables-restore") && onPath("nft")) return "nftables";
  return "iptables";
}

export function masqBackend(name: MasqBackendName | undefined): IpMasqBackend {
  return (name ?? defaultMasqBackend()) === "nftables" ? new NftablesMasq() : new IptablesMasq();
}

function presentBackends(): IpMasqBackend[] {
  const out: IpMasqBackend[] = [];
  if (onPath("iptables-restore")) out.push(new IptablesMasq());
  if (onPath("nft")) out.push(new NftablesMasq());
  return out;
}

export async function teardownMasq(i: MasqInstance): Promise<void> {
  await Promise.all(presentBackends().map((b) => b.teardown(i)));
}

export async function gcMasq(network: string, valid: Attachment[]): Promise<void> {
  await Promise.all(presentBackends().map((b) => b.gc(network, valid)));
}

/** Problems for CHECK: the entry of the backend in use must exist. */
export async function checkMasq(name: MasqBackendName | undefined, s: MasqSetup): Promise<string[]> {
  return masqBackend(name).check(s);
}
