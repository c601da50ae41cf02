/**
 * CHECK of one attachment against cni-nft's own table, in whatever layout the table is in (a
 * host not yet upgraded keeps an earlier one until the first ADD of this code): the skeleton's
 * rules and the subnets' chains (current layout only), every element with its owner element,
 * and the chains of its classes of conditions (or its guard chains in the layout before them).
 */
import { nftOwnerHash } from "../../../src/cni/attachment.js";
import { missingRules, type Element } from "../../../src/nftables/index.js";
import type { PortMapConf } from "./config.js";
import { hasOldGuards, oldGuardChains, withOldGuards } from "./portmap_nftables_guards.js";
import {
  desired,
  keyText,
  ownerElement,
  skeletonRules,
  snatChainRules,
  valueText,
  NFT_TABLE,
  OWNERS_SET,
} from "./portmap_nftables_layout.js";
import { isLegacy, legacyDesired } from "./portmap_nftables_legacy.js";
import type { TableState } from "./portmap_nftables_state.js";
import { isV2, v2Desired } from "./portmap_nftables_v2.js";

/** What is missing for `c` in the listed table (`state`: with rule texts; undefined: no table). */
export function missingInOwnTable(state: TableState | undefined, c: PortMapConf): string[] {
  if (!state) return [`table inet ${NFT_TABLE}`];
  const have = new Map(state.elements.map((e) => [keyText(e), e]));
  const want = desired(c);
  const old = hasOldGuards(state.sets);
  const legacy = isLegacy(state.sets) || isV2(state.sets) || old;
  // The shared skeleton first: with its rules gone (a flushed table or chain) no element works.
  const missing = legacy
    ? []
    : missingRules(
        state,
        // Class chains: by name below (nft lists conditions in its own words).
        [...skeletonRules(), ...want.snatChains.map(snatChainRules)],
        `inet ${NFT_TABLE}`,
      );
  const hash = nftOwnerHash(c);
  const wrong = (e: Element): boolean => {
    const old = have.get(keyText(e));
    return !old || old.comment !== e.comment || valueText(old) !== valueText(e);
  };
  const layout = isLegacy(state.sets) ? legacyDesired(c) : isV2(state.sets) ? v2Desired(c) : want.elements;
  const expected = old ? withOldGuards(c, layout) : layout;
  for (const e of expected) {
    if (wrong(e))
      missing.push(`element ${e.key.join(" . ")} of ${e.map ?? e.set} in table inet ${NFT_TABLE}`);
    else if (!legacy && wrong(ownerElement(e, hash, e.comment)))
      missing.push(
        `the owner element of ${e.key.join(" . ")} of ${e.map} in set ${OWNERS_SET} of table inet ${NFT_TABLE}`,
      );
  }
  // (subnet chains: missingRules above reports a missing one)
  const chains = old ? oldGuardChains(expected) : want.classes.flatMap((k) => [k.name, `${k.name}-out`]);
  for (const ch of chains)
    if (!state.chains.includes(ch)) missing.push(`chain ${ch} in table inet ${NFT_TABLE}`);
  return missing;
}
