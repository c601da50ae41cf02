/**
 * Driving components generically: set up several at once (one nft run for every nftables
 * backend among them), check them, remove an attachment from every backend present, collect
 * garbage everywhere. Removal and GC run every step and report every failure together.
 */
import type { Attachment } from "../cni/attachment.js";
import { applyWithSkeleton, type Interface, type SkeletonPlan } from "../nftables/index.js";
import { mergeEffects, type Bound, type Effects, type HostStateBackend } from "./contract.js";
import { presentBackends } from "./select.js";

/** Several steps failed (or one did, of several that all ran); `failures` has each error. */
export class StepsFailedError extends Error {
  override readonly name = "StepsFailedError";
  constructor(readonly failures: ReadonlyArray<{ step: string; error: unknown }>) {
    super(
      failures
        .map((f) => `${f.step}: ${f.error instanceof Error ? f.error.message : String(f.error)}`)
        .join("; "),
    );
  }
}

/** Runs every step (in parallel); throws the only error as it is, several as one StepsFailedError. */
export async function runEvery<T>(steps: ReadonlyArray<readonly [string, () => Promise<T>]>): Promise<T[]> {
  const settled = await Promise.allSettled(steps.map(([, run]) => run()));
  const failures = settled.flatMap((s, i) =>
    s.status === "rejected" ? [{ step: steps[i]![0], error: s.reason as unknown }] : [],
  );
  if (failures.length === 1) throw failures[0]!.error;
  if (failures.length) throw new StepsFailedError(failures);
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

const label = (b: HostStateBackend<unknown>): string => `${b.component} (${b.name})`;

/**
 * Sets up every bound component: the nftables ones that can plan in one nft run through `nft`
 * (the fast path first, the skeleton only when it is missing), the others one after the other.
 */
export async function setUpAll(nft: Interface, parts: readonly Bound[], a: Attachment): Promise<Effects> {
  const plans: SkeletonPlan[] = [];
  const effects: Effects[] = [];
  for (const { backend, spec } of parts) {
    if (backend.plan) plans.push(backend.plan(a, spec));
    else effects.push(await backend.setUp(a, spec));
  }
  if (plans.length)
    await applyWithSkeleton(nft, { fast: plans.flatMap((p) => p.fast), full: plans.flatMap((p) => p.full) });
  return mergeEffects(effects);
}

export async function checkAll(parts: readonly Bound[], a: Attachment): Promise<string[]> {
  const missing = await Promise.all(parts.map(({ backend, spec }) => backend.check(a, spec)));
  return missing.flat();
}

/** Removes the attachment from every present backend of a component, each one tried. */
export async function removeEverywhere<S>(
  backends: readonly HostStateBackend<S>[],
  a: Attachment,
  spec?: S,
): Promise<Effects> {
  const present = await presentBackends(backends);
  const out = await runEvery(
    present.map((b) => [label(b as HostStateBackend<unknown>), () => b.remove(a, spec)] as const),
  );
  return mergeEffects(out);
}

/** GC on every present backend of a component, each one tried. */
export async function gcEverywhere<S>(
  backends: readonly HostStateBackend<S>[],
  network: string,
  valid: readonly Attachment[],
): Promise<Effects> {
  const present = await presentBackends(backends);
  const out = await runEvery(
    present.map((b) => [label(b as HostStateBackend<unknown>), () => b.gc(network, valid)] as const),
  );
  return mergeEffects(out);
}
