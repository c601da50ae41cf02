/**
 * Driving components generically: set up several at once (one nft run for every nftables
 * backend among them), check them, remove an attachment from every backend present, collect
 * garbage everywhere. Removal and GC run every step and report every failure together
 * (TeardownError).
 */
import type { Attachment } from "../cni/attachment.js";
import { CniError } from "../cni/errors.js";
import { TeardownError } from "../cni/teardown.js";
import { applyWithSkeleton, mergePlans, type Interface, type SkeletonPlan } from "../nftables/index.js";
import { mergeEffects, type Bound, type Effects, type HostStateBackend } from "./contract.js";
import { presentBackends } from "./select.js";

/**
 * Runs every step at once, each whatever the others do; throws a TeardownError naming every
 * failed step (src/cni/teardown.ts: one failure keeps its own message and code).
 */
export async function runEvery<T>(steps: ReadonlyArray<readonly [string, () => Promise<T>]>): Promise<T[]> {
  const settled = await Promise.allSettled(steps.map(([, run]) => run()));
  const failures = settled.flatMap((s, i) =>
    s.status === "rejected" ? [{ what: steps[i]![0], error: CniError.from(s.reason) }] : [],
  );
  if (failures.length) throw new TeardownError(failures);
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

const label = (b: HostStateBackend<unknown>): string => `${b.component} (${b.name})`;

/**
 * Sets up every bound component: the nftables ones that can plan in one nft run through `nft`
 * (the fast path first, the skeleton only when it is missing), the others one after the other.
 */
export async function setUpAll(nft: Interface, parts: readonly Bound[], a: Attachment): Promise<Effects> {
  const effects: Effects[] = [];
  for (const { backend, spec } of parts) if (!backend.plan) effects.push(await backend.setUp(a, spec));
  // The plans' reads run at once (one nft listing each).
  const plans: SkeletonPlan[] = await Promise.all(
    parts.flatMap(({ backend, spec }) => (backend.plan ? [backend.plan(a, spec)] : [])),
  );
  if (plans.length) await applyWithSkeleton(nft, mergePlans(nft, plans));
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
