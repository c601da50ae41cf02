/**
 * The host state of a container's veth for bridge and ptp: masquerade (iptables or nftables)
 * and, for bridge, the MAC spoof check. On ADD the nftables parts share one nft run.
 */
import type { Attachment } from "../cni/attachment.js";
import { masqueradeBackends, type MasqSpec } from "../ipmasq/index.js";
import { MASQ_TABLE } from "../ipmasq/ipmasq_nftables_layout.js";
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
import { ipBatch } from "../iproute2/ip.js";
import { onPath } from "../iptables/iptables.js";
import { CniError, ErrorCode } from "../cni/errors.js";
import { chooseFramework, requireFramework, requireUsable } from "../framework/index.js";
import { SPOOF_FAMILY, SPOOF_TABLE, SpoofCheck, type SpoofSpec } from "./spoofcheck.js";

export interface VethStatePlan {
  ipMasq: boolean;
  /** ipMasqBackend; default: the host's. */
  backend?: "iptables" | "nftables";
  addresses: string[];
  spoof?: SpoofSpec;
}

/** What a veth plugin's config asks of the host, before any address is known. */
export interface VethStateWant {
  ipMasq: boolean;
  backend?: "iptables" | "nftables";
  spoof: boolean;
}

/**
 * For ADD, before anything changes: the masquerade backend (configured, recorded for the network,
 * else the host's default) and a refusal (code 50) when it, or nft for the spoof check, is not
 * installed. CHECK uses the same choice.
 */
export function chooseVethBackend(network: string, want: VethStateWant): "iptables" | "nftables" | undefined {
  if (want.spoof) requireFramework("nftables", "macspoofchk");
  if (!want.ipMasq) return undefined;
  const backend = chooseFramework(want.backend, network);
  requireFramework(backend, "ipMasq");
  return backend;
}

/** STATUS: `ip` on PATH and every backend an ADD would use usable (tools and kernel). */
export async function vethStateStatus(network: string, want: VethStateWant): Promise<void> {
  if (!onPath("ip"))
    throw new CniError(ErrorCode.PluginNotAvailable, "plugin not available: ip not found in PATH");
  const backend = chooseVethBackend(network, want);
  if (backend) await requireUsable(backend, "ipMasq");
  if (want.spoof && backend !== "nftables") await requireUsable("nftables", "macspoofchk");
}

/** The host's interface names, one `ip link show`. */
async function hostLinks(): Promise<ReadonlySet<string>> {
  const links = await ipBatch(["link show"], { json: true });
  return new Set(((links.shows[0] ?? []) as Array<{ ifname: string }>).map((l) => l.ifname));
}

export function spoofCheck(host: Host, links: () => Promise<ReadonlySet<string>> = hostLinks): SpoofCheck {
  return new SpoofCheck(host.nft(SPOOF_FAMILY, SPOOF_TABLE), host.tools, links, host.records("spoofcheck"));
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
  what: { ipMasq: boolean; spoof: boolean; addresses?: string[] },
): Promise<void> {
  const spec: MasqSpec | undefined = what.addresses?.length ? { addresses: what.addresses } : undefined;
  await runEvery([
    ...(what.ipMasq
      ? [["masquerade", () => removeEverywhere(masqueradeBackends(host), a, spec)] as const]
      : []),
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
