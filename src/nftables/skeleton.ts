/**
 * Shared objects (tables, base chains, their fixed rules) exist after the first ADD; declaring
 * them again on every ADD, as upstream does, costs nft about as much as the per-container change
 * itself. So: apply the per-container transactions alone, and only when nft says something they
 * reference is missing (ENOENT), apply the full ones that declare the skeleton too.
 */
import { isNotFound } from "./errors.js";
import type { Transaction } from "./transaction.js";
import type { Interface } from "./types.js";

/** The two ways of making one change: without and with the shared objects it needs. */
export interface SkeletonPlan {
  fast: Transaction[];
  full: Transaction[];
}

/** Runs `fast` in one atomic run, and `full` in another only when `fast` found something missing. */
export async function applyWithSkeleton(nft: Interface, plan: SkeletonPlan): Promise<void> {
  try {
    await nft.runAll(plan.fast);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await nft.runAll(plan.full);
  }
}
