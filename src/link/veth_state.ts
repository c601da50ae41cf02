/**
 * The host state of a container's veth for bridge and ptp: masquerade (iptables or nftables)
 * and, for bridge, the MAC spoof check. On ADD the nftables parts share one nft run.
 */
import type { Attachment } from "../cni/attachment.js";
import { masqueradeBackends, type MasqSpec } from "../ipmasq/index.js";
import { MASQ_TABLE } from "../ipmasq/ipmasq_nftables.js";
import {
  backendNamed,
  bind,
  checkAll,
  defaultBackend,
  gcEverywhere,
  removeEverywhere,
  runEvery,
  setUpAll,
  type Bound,
  type Host,
} from "../hoststate/index.js";
import { ipBatch } from "../netlink/ip.js";
import { SPOOF_FAMILY, SPOOF_TABLE, SpoofCheck, type SpoofSpec } from "./spoofcheck.js";

export interface VethStatePlan {
  ipMasq: boolean;
  /** ipMasqBackend; default: the host's. */
  backend?: "iptables" | "nftables";
  addresses: string[];
  spoof?: SpoofSpec;
}

/** The host's interface names, one `ip link show`. */
async function hostLinks(): Promise<ReadonlySet<string>> {
  const links = await ipBatch(["link show"], { json: true });
  return new Set(((links.shows[0] ?? []) as Array<{ ifname: string }>).map((l) => l.ifname));
}

export function spoofCheck(host: Host, links: () => Promise<ReadonlySet<string>> = hostLinks): SpoofCheck {
  return new SpoofCheck(host.nft(SPOOF_FAMILY, SPOOF_TABLE), host.tools, links);
}

function parts(host: Host, plan: VethStatePlan, links?: () => Promise<ReadonlySet<string>>): Bound[] {
  const out: Bound[] = [];
  if (plan.ipMasq && plan.addresses.length) {
    const masq = backendNamed(masqueradeBackends(host), plan.backend ?? defaultBackend(host.tools));
    out.push(bind<MasqSpec>(masq, { addresses: plan.addresses }));
  }
  if (plan.spoof) out.push(bind<SpoofSpec>(spoofCheck(host, links), plan.spoof));
  return out;
}

export function setUpVethState(host: Host, a: Attachment, plan: VethStatePlan): Promise<unknown> {
  return setUpAll(host.nft("inet", MASQ_TABLE), parts(host, plan), a);
}

export function checkVethState(host: Host, a: Attachment, plan: VethStatePlan): Promise<string[]> {
  return checkAll(parts(host, plan), a);
}

/** DEL: masquerade on every backend present, the spoof check; every step runs. */
export async function removeVethState(
  host: Host,
  a: Attachment,
  what: { ipMasq: boolean; spoof: boolean },
): Promise<void> {
  await runEvery([
    ...(what.ipMasq ? [["masquerade", () => removeEverywhere(masqueradeBackends(host), a)] as const] : []),
    ...(what.spoof ? [["spoof check", () => removeEverywhere([spoofCheck(host)], a)] as const] : []),
  ]);
}

/**
 * GC: masquerade entries of this network not in the valid list; spoof checks whose host veth no
 * longer exists (see SpoofCheck.gc).
 */
export async function gcVethState(
  host: Host,
  network: string,
  valid: readonly Attachment[],
  links?: () => Promise<ReadonlySet<string>>,
): Promise<void> {
  await gcEverywhere(masqueradeBackends(host), network, valid);
  await gcEverywhere([spoofCheck(host, links)], network, valid);
}
