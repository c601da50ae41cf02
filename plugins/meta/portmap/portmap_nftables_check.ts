/**
 * CHECK of one attachment against cni-nft's own table, in whatever layout the table is in (a
 * host not yet upgraded keeps an earlier one until the first ADD of this code): the skeleton's
 * rules and the subnets' chains (current layout only), every element with its owner element,
 * and the chains of its classes of conditions (or its guard chains in the layout before them).
 * Class chains are compared by name only: nft lists conditions in its own words.
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
import { classOfMap, listedClassElement, type TableState } from "./portmap_nftables_state.js";
import { isV2, v2Desired } from "./portmap_nftables_v2.js";

/**
 * A class element as it should be in the class that holds its mapping: the config's class, else
 * the one an upgrade named after nft's text of the same conditions (listedClassElement).
 */
function inItsClass(e: Element, have: ReadonlyMap<string, Element>, listed: readonly Element[]): Element {
  if (!e.map?.startsWith("cond_") || have.has(keyText(e))) return e;
  const there = listedClassElement(listed, e);
  return there?.map ? { ...e, map: there.map, value: [classOfMap(there.map)] } : e;
}

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
  const expected = (old ? withOldGuards(c, layout) : layout).map((e) => inItsClass(e, have, state.elements));
  for (const e of expected) {
    if (wrong(e))
      missing.push(`element ${e.key.join(" . ")} of ${e.map ?? e.set} in table inet ${NFT_TABLE}`);
    else if (!legacy && wrong(ownerElement(e, hash, e.comment)))
      missing.push(
        `the owner element of ${e.key.join(" . ")} of ${e.map} in set ${OWNERS_SET} of table inet ${NFT_TABLE}`,
      );
  }
  // (subnet chains: missingRules above reports a missing one)
  const classes = new Set(expected.flatMap((e) => (e.map?.startsWith("cond_") ? [classOfMap(e.map)] : [])));
  const chains = old ? oldGuardChains(expected) : [...classes].flatMap((k) => [k, `${k}-out`]);
  for (const ch of chains)
    if (!state.chains.includes(ch)) missing.push(`chain ${ch} in table inet ${NFT_TABLE}`);
  return missing;
}
