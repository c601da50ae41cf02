/**
 * Upstream's MAC spoof check layout in table `bridge nat`, which upstream's bridge and cni-nft
 * before its own table write: base chain `PREROUTING` (filter, prerouting, -300) with
 * `iifname <host veth> jump cni-br-iface-<id>`, that chain jumping to `cni-br-iface-<id>-mac`,
 * which returns for the container's MAC and drops the rest; every rule commented
 * `macspoofchk-<id>`, where `<id>` is `<containerID>-<ifname>` (upstream's uniqueID). Read only to
 * CHECK, DEL and GC what is there for an attachment (src/link/spoofcheck.ts writes its own
 * table); every read here costs O(checks in the chain), which is why ADD never comes here.
 */
import { parseMac } from "../address/index.js";
import type { Attachment } from "../cni/attachment.js";
import { isNotFound, type Interface, type Rule } from "../nftables/index.js";

export const UPSTREAM_SPOOF_TABLE = "nat";
export const UPSTREAM_SPOOF_CHAIN = "PREROUTING";
const IFACE_PREFIX = "cni-br-iface-";

export const refIdOf = (a: Attachment): string => `${a.containerId}-${a.ifname}`;
export const ifaceChain = (refId: string): string => `${IFACE_PREFIX}${refId}`;
export const macChain = (refId: string): string => `${ifaceChain(refId)}-mac`;
export const upstreamComment = (refId: string): string => `macspoofchk-${refId}`;

async function rules(nft: Interface, chain: string, text = true): Promise<Rule[] | undefined> {
  try {
    return await nft.listRules(chain, { text });
  } catch (e) {
    if (isNotFound(e)) return undefined;
    throw e;
  }
}

async function chains(nft: Interface): Promise<string[]> {
  try {
    return await nft.list("chains");
  } catch (e) {
    if (isNotFound(e)) return [];
    throw e;
  }
}

/** Handles of a check's jump rules in the base chain. */
function jumps(base: readonly Rule[], refId: string): number[] {
  return base
    .filter((r) => r.comment === upstreamComment(refId) || r.rule.endsWith(`jump ${ifaceChain(refId)}`))
    .flatMap((r) => (r.handle === undefined ? [] : [r.handle]));
}

async function removeRefIds(
  nft: Interface,
  refIds: readonly string[],
  base: readonly Rule[],
  have: readonly string[],
): Promise<void> {
  const tx = nft.newTransaction();
  for (const refId of refIds)
    for (const h of jumps(base, refId))
      tx.delete({ kind: "rule", chain: UPSTREAM_SPOOF_CHAIN, rule: "", handle: h });
  // Flush first: a chain that still has rules cannot be deleted.
  const mine = refIds.flatMap((id) => [ifaceChain(id), macChain(id)]).filter((c) => have.includes(c));
  for (const c of mine) tx.flush({ kind: "chain", name: c });
  for (const c of mine) tx.delete({ kind: "chain", name: c });
  if (tx.size > 0) await nft.run(tx);
}

/**
 * Whether the attachment's check chain is there: one listing of a chain by name (no rules of
 * the base chain read), what a DEL without a record of ours asks before it reads the base chain.
 */
export async function hasUpstreamCheck(nft: Interface, a: Attachment): Promise<boolean> {
  return (await rules(nft, ifaceChain(refIdOf(a)), false)) !== undefined;
}

/** Its jumps in the base chain and its two chains (the base chain stays, as upstream leaves it). */
export async function removeUpstreamCheck(nft: Interface, a: Attachment): Promise<void> {
  const [base, have] = await Promise.all([rules(nft, UPSTREAM_SPOOF_CHAIN), chains(nft)]);
  await removeRefIds(nft, [refIdOf(a)], base ?? [], have);
}

/**
 * Checks not in `valid` whose host veth no longer exists, of any network: upstream's comment
 * does not name the network, so a valid list of one network cannot prove another's stale.
 */
export async function gcUpstreamChecks(
  nft: Interface,
  valid: readonly Attachment[],
  links: () => Promise<ReadonlySet<string>>,
): Promise<void> {
  const have = await chains(nft);
  const keep = new Set(valid.map(refIdOf));
  const refIds = have
    .filter((c) => c.startsWith(IFACE_PREFIX) && !c.endsWith("-mac"))
    .map((c) => c.slice(IFACE_PREFIX.length))
    .filter((id) => !keep.has(id));
  if (refIds.length === 0) return;
  const [base, present] = await Promise.all([rules(nft, UPSTREAM_SPOOF_CHAIN), links()]);
  const stale = refIds.filter((id) => {
    const jump = (base ?? []).find((r) => r.rule.endsWith(`jump ${ifaceChain(id)}`));
    const iface = jump?.rule.match(/iifname "([^"]+)"/)?.[1];
    return !iface || !present.has(iface);
  });
  if (stale.length) await removeRefIds(nft, stale, base ?? [], have);
}

/** Its jump in the base chain or one of its two chains. */
export async function holdsUpstream(nft: Interface, a: Attachment): Promise<boolean> {
  const refId = refIdOf(a);
  const [base, have] = await Promise.all([rules(nft, UPSTREAM_SPOOF_CHAIN), chains(nft)]);
  return (
    jumps(base ?? [], refId).length > 0 || have.includes(ifaceChain(refId)) || have.includes(macChain(refId))
  );
}

/** What upstream's layout lacks of the attachment's check, in words ([] when whole). */
export async function missingInUpstreamLayout(nft: Interface, a: Attachment, mac: string): Promise<string[]> {
  const refId = refIdOf(a);
  const [base, macRules] = await Promise.all([rules(nft, UPSTREAM_SPOOF_CHAIN), rules(nft, macChain(refId))]);
  const missing: string[] = [];
  if (jumps(base ?? [], refId).length === 0)
    missing.push(`spoof-check jump rule in bridge ${UPSTREAM_SPOOF_TABLE} ${UPSTREAM_SPOOF_CHAIN}`);
  if (!macRules) missing.push(`spoof-check chain ${macChain(refId)}`);
  else if (!macRules.some((r) => r.rule.includes(`ether saddr ${parseMac(mac) ?? mac} return`)))
    missing.push(`spoof-check rule allowing ${mac} in chain ${macChain(refId)}`);
  return missing;
}
