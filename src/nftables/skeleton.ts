/**
 * Shared objects (tables, base chains, their fixed rules) exist after the first ADD; declaring
 * them again on every ADD, as upstream does, costs nft about as much as the per-container change
 * itself. So: apply the per-container transactions alone, and only when nft says something they
 * reference is missing (ENOENT), apply the full ones that declare the skeleton too.
 */
import { isAlreadyExists, isNotFound } from "./errors.js";
import type { Transaction } from "./transaction.js";
import type { Interface, Rule } from "./types.js";

/** The two ways of making one change: without and with the shared objects it needs. */
export interface SkeletonPlan {
  fast: Transaction[];
  full: Transaction[];
  /**
   * The slow path of a plan whose transactions `create` keys: when nft reports one exists (a
   * repeated ADD, a key another attachment holds), this reads and replaces under the plan's own
   * lock instead.
   */
  repair?: () => Promise<void>;
}

/**
 * Runs `fast` in one atomic run, `full` in another only when `fast` found something missing, and
 * the plan's repair when either found a key it creates there already.
 */
export async function applyWithSkeleton(nft: Interface, plan: SkeletonPlan): Promise<void> {
  const repairOr = (e: unknown): Promise<void> => {
    if (plan.repair && isAlreadyExists(e)) return plan.repair();
    throw e;
  };
  try {
    await nft.runAll(plan.fast);
  } catch (e) {
    if (!isNotFound(e)) return repairOr(e);
    await nft.runAll(plan.full).catch(repairOr);
  }
}

/**
 * Several plans as one (one nft run for all); when one of them needs its repair, each is applied
 * on its own, since nothing of the shared run was committed.
 */
export function mergePlans(nft: Interface, plans: readonly SkeletonPlan[]): SkeletonPlan {
  const merged: SkeletonPlan = { fast: plans.flatMap((p) => p.fast), full: plans.flatMap((p) => p.full) };
  if (!plans.some((p) => p.repair)) return merged;
  return {
    ...merged,
    repair: async () => {
      for (const p of plans) await applyWithSkeleton(nft, p);
    },
  };
}

/** A chain of a skeleton and the rules it should hold, in order, as they are written. */
export interface SkeletonChain {
  chain: string;
  rules: readonly string[];
}

/** Words that tell a skeleton's rules apart whatever nft's printing does to the rest. */
const TELLING = new Set(["jump", "goto", "accept", "drop", "return", "masquerade", "dnat", "snat"]);
const TELLING_TOO = new Set(["vmap", "map", "saddr", "daddr", "fib", "local"]);

/** What a rule refers to (`@set`, jump targets) and does (verdicts, NAT), in order. */
function shape(rule: string): string {
  const words = rule.trim().split(/\s+/);
  return words
    .filter(
      (w, i) =>
        w.startsWith("@") || TELLING.has(w) || TELLING_TOO.has(w) || /^(jump|goto)$/.test(words[i - 1] ?? ""),
    )
    .join(" ");
}

/**
 * What `state` (a listing with rule text) lacks of the skeleton `want`, in words: chains that are
 * gone and rules that are (after `nft flush table` or `nft flush chain` the chains stay empty).
 * Rules are compared by what they refer to and do, so nft's canonical printing does not matter.
 */
export function missingRules(
  state: { chains: readonly string[]; rules: ReadonlyMap<string, readonly Rule[]> },
  want: readonly SkeletonChain[],
  table: string,
): string[] {
  const missing: string[] = [];
  for (const { chain, rules } of want) {
    if (!state.chains.includes(chain)) {
      missing.push(`chain ${chain} in table ${table}`);
      continue;
    }
    const have = (state.rules.get(chain) ?? []).map((r) => shape(r.rule));
    for (const rule of rules) {
      const i = have.indexOf(shape(rule));
      if (i >= 0) have.splice(i, 1);
      else missing.push(`rule "${rule}" in chain ${chain} of table ${table}`);
    }
  }
  return missing;
}
