/**
 * Shared objects (tables, base chains, their fixed rules) exist after the first ADD; declaring
 * them again on every ADD, as upstream does, costs nft about as much as the per-container change
 * itself. So: apply the per-container transactions alone, and only when nft says something they
 * reference is missing (ENOENT), apply the full ones that declare the skeleton too.
 */
import { isNotFound } from "./errors.js";
import { applyTransactions } from "./batch.js";
import type { ExecOptions } from "./exec.js";
import type { Transaction } from "./transaction.js";

export async function applyWithSkeleton(
  fast: Transaction[],
  full: Transaction[],
  exec: ExecOptions = {},
): Promise<void> {
  try {
    await applyTransactions(fast, exec);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await applyTransactions(full, exec);
  }
}
