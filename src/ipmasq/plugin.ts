/**
 * What bridge and ptp do with masquerade and the spoof check on ADD, DEL, CHECK and GC. When both
 * go to nftables they share one nft run.
 */
import { applyWithSkeleton, type Transaction } from "../nftables/index.js";
import { SpoofChecker, listSpoofCheckRefIds } from "../link/spoofcheck.js";
import {
  IptablesMasq,
  NftablesMasq,
  checkMasq,
  defaultMasqBackend,
  gcMasq,
  teardownMasq,
  type MasqBackendName,
} from "./index.js";
import { ipBatch } from "../netlink/ip.js";

export interface InstanceArgs {
  containerId: string;
  ifname: string;
  config: { name: string };
}

export interface FirewallPlan {
  ipMasq: boolean;
  backend?: MasqBackendName;
  addresses: string[];
  spoof?: { hostVeth: string; mac: string };
}

function instance(args: InstanceArgs): { network: string; containerId: string; ifname: string } {
  return { network: args.config.name, containerId: args.containerId, ifname: args.ifname };
}

export async function setupFirewall(args: InstanceArgs, plan: FirewallPlan): Promise<void> {
  const fast: Transaction[] = [];
  const full: Transaction[] = [];
  const backend = plan.backend ?? defaultMasqBackend();
  const masq = { ...instance(args), addresses: plan.addresses };
  if (plan.ipMasq && plan.addresses.length) {
    if (backend === "nftables") {
      const m = new NftablesMasq();
      fast.push(m.setupTransaction(masq, false));
      full.push(m.setupTransaction(masq));
    } else await new IptablesMasq().setup(masq);
  }
  if (plan.spoof) {
    const sc = new SpoofChecker(`${args.containerId}-${args.ifname}`);
    fast.push(sc.setupTransaction(plan.spoof.hostVeth, plan.spoof.mac, false));
    full.push(sc.setupTransaction(plan.spoof.hostVeth, plan.spoof.mac));
  }
  await applyWithSkeleton(fast, full);
}

export async function masqTeardownAndSpoof(
  args: InstanceArgs,
  what: { ipMasq: boolean; spoof: boolean },
): Promise<void> {
  await Promise.all([
    what.ipMasq ? teardownMasq(instance(args)) : undefined,
    what.spoof ? new SpoofChecker(`${args.containerId}-${args.ifname}`).teardown() : undefined,
  ]);
}

export async function checkFirewall(args: InstanceArgs, plan: FirewallPlan): Promise<string[]> {
  const missing: string[] = [];
  if (plan.ipMasq && plan.addresses.length)
    missing.push(...(await checkMasq(plan.backend, { ...instance(args), addresses: plan.addresses })));
  if (plan.spoof)
    missing.push(...(await new SpoofChecker(`${args.containerId}-${args.ifname}`).check(plan.spoof.mac)));
  return missing;
}

/**
 * GC: masquerade entries of this network not in the valid list; spoof checks whose host veth no
 * longer exists (the bridge nat table is shared by all networks, so a valid list of one network
 * cannot say that another network's check is stale, but a check for a vanished veth is).
 */
export async function gcFirewall(
  args: InstanceArgs,
  valid: Array<{ containerId: string; ifname: string }>,
): Promise<void> {
  await gcMasq(args.config.name, valid);
  const refIds = await listSpoofCheckRefIds();
  if (refIds.length === 0) return;
  const keep = new Set(valid.map((a) => `${a.containerId}-${a.ifname}`));
  const links = await ipBatch(["link show"], { json: true });
  const present = new Set(((links.shows[0] ?? []) as Array<{ ifname: string }>).map((l) => l.ifname));
  for (const refId of refIds) {
    if (keep.has(refId)) continue;
    const sc = new SpoofChecker(refId);
    const rules = await sc.nft.listRules("PREROUTING", { text: true });
    const iface = rules
      .find((r) => r.rule.endsWith(`jump ${sc.ifaceChain}`))
      ?.rule.match(/iifname "([^"]+)"/)?.[1];
    if (!iface || !present.has(iface)) await sc.teardown();
  }
}
