/**
 * Teardown that never stops half-way: DEL and GC run every cleanup step, even after one failed,
 * and report every failure together (netavark's error list). A step that fails does not keep a
 * later, independent step from removing what it owns.
 */
import { CniError } from "./errors.js";

export interface CleanupStep {
  /** What the step removes, for the report ("container link eth0", "masquerade rules"). */
  what: string;
  run(): unknown;
}

/** Every failure of a teardown; code and details are the first failure's. */
export class TeardownError extends CniError {
  constructor(readonly failures: ReadonlyArray<{ what: string; error: CniError }>) {
    const first = failures[0]!.error;
    super(
      first.code,
      failures.length === 1
        ? first.message
        : `${failures.length} cleanup steps failed: ${failures.map((f) => `${f.what}: ${f.error.message}`).join("; ")}`,
      first.details,
      { cause: failures.length === 1 ? first : new AggregateError(failures.map((f) => f.error)) },
    );
  }
}

/**
 * Runs the steps in order, each whatever happened before it; throws a TeardownError naming every
 * failed step (one failure keeps its own message and code). With `atOnce`, the steps run
 * concurrently (for steps that do not depend on each other: a DEL then waits for the slowest
 * step, not for their sum); failures are still reported in the steps' order.
 */
export async function runTeardown(
  steps: readonly CleanupStep[],
  opts: { atOnce?: boolean } = {},
): Promise<void> {
  const failures: Array<{ what: string; error: CniError }> = [];
  if (opts.atOnce) {
    const settled = await Promise.allSettled(steps.map((step) => Promise.resolve().then(() => step.run())));
    settled.forEach((s, i) => {
      if (s.status === "rejected") failures.push({ what: steps[i]!.what, error: CniError.from(s.reason) });
    });
  } else
    for (const step of steps) {
      try {
        await step.run();
      } catch (e) {
        failures.push({ what: step.what, error: CniError.from(e) });
      }
    }
  if (failures.length) throw new TeardownError(failures);
}
