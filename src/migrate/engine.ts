/**
 * Moving and restoring host state, one attachment and one component at a time:
 *
 *   migrate: set up on the target (unless it is whole there already), verify it, and only then
 *            remove it from every other layout that holds it. The target's NAT base chains are in
 *            place before the source's go, and no conntrack entry is ever deleted, so established
 *            flows keep their NAT bindings (docs/migration.md).
 *   restore: set up again, on the backend it belongs on, what a flush or reload took away.
 *
 * No journal: every step looks at the host first and is idempotent, so a run killed at any point
 * leaves each component whole on at least one layout, and a rerun finishes the job; a rerun after
 * success changes nothing.
 */
import { frameworkPresent, type Framework } from "../framework/index.js";
import { isFirewalldRunning } from "../../plugins/meta/firewall/firewall_firewalld.js";
import { chooseFramework } from "../framework/index.js";
import type { BoundBackend, CachedAttachment, Component, ComponentName, LayoutName } from "./components.js";
import { componentsOf } from "./components.js";

export type StepAction =
  | "unchanged"
  | "moved"
  | "set up"
  | "repaired"
  | "would move"
  | "would set up"
  | "would repair"
  | "skipped"
  | "failed";

export interface StepReport {
  component: ComponentName;
  action: StepAction;
  /** Layouts the state was removed from (migrate) or found on. */
  from?: LayoutName[];
  /** The layout it is (or would be) on. */
  to?: LayoutName;
  /** What was missing, why it was skipped, or what failed. */
  detail?: string;
}

export interface AttachmentReport {
  network: string;
  containerId: string;
  ifname: string;
  steps: StepReport[];
  ok: boolean;
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

function usable(b: BoundBackend): boolean {
  return b.framework === "firewalld" || frameworkPresent(b.framework);
}

/** Set up on `to` unless whole there; then verify. Partial state on `to` is cleared first. */
async function makeWhole(to: BoundBackend): Promise<{ changed: boolean; missing: string[] }> {
  const before = await to.check();
  if (before.length === 0) return { changed: false, missing: [] };
  // A partial state (a run killed half-way, a partial flush) is cleared, then made whole: the
  // component is still whole elsewhere (migrate) or broken anyway (restore).
  if (await to.holds()) await to.remove();
  await to.setUp();
  const after = await to.check();
  if (after.length) throw new Error(`set up on ${to.layout}, but still missing: ${after.join("; ")}`);
  return { changed: true, missing: before };
}

async function migrateComponent(c: Component, target: Framework, dryRun: boolean): Promise<StepReport> {
  const base = { component: c.name };
  const to = c.backends.find((b) => b.layout === target && b.target);
  if (!to)
    return { ...base, action: "unchanged", detail: `${c.name} exists only on ${c.backends[0]?.layout}` };
  if (c.configured && c.configured !== target)
    return {
      ...base,
      action: "skipped",
      detail: `the config names backend ${c.configured}: change it to ${target} first (a configured backend wins over the network's record)`,
    };
  if (!usable(to)) return { ...base, action: "failed", detail: `${target} is not installed here` };
  const others = c.backends.filter((b) => b !== to && b.framework !== "firewalld" && usable(b));
  const holders: BoundBackend[] = [];
  for (const b of others) if (await b.holds()) holders.push(b);
  const from = holders.map((b) => b.layout);
  if (dryRun) {
    const missing = await to.check();
    if (missing.length === 0 && holders.length === 0) return { ...base, action: "unchanged", to: to.layout };
    return {
      ...base,
      action: holders.length ? "would move" : "would set up",
      from,
      to: to.layout,
      ...(missing.length ? { detail: `to set up: ${missing.join("; ")}` } : {}),
    };
  }
  const { changed } = await makeWhole(to);
  // Only now, with the target whole and verified: the source goes.
  for (const b of holders) await b.remove();
  if (!changed && holders.length === 0) return { ...base, action: "unchanged", to: to.layout };
  return { ...base, action: holders.length ? "moved" : "set up", from, to: to.layout };
}

/** Where a component belongs: the config's backend, else (firewall) firewalld when it runs, else the record or the host default. */
async function homeOf(c: Component, network: string): Promise<BoundBackend | undefined> {
  let layout: LayoutName | undefined = c.configured;
  if (!layout && c.name === "firewall" && (await isFirewalldRunning())) layout = "firewalld";
  layout ??= chooseFramework(undefined, network);
  // firewalld is never a migration target, but what a reload dropped is restored there.
  return c.backends.find((b) => b.layout === layout && (b.target || b.layout === "firewalld"));
}

async function restoreComponent(c: Component, network: string, dryRun: boolean): Promise<StepReport> {
  const base = { component: c.name };
  // State already on another writable layout (e.g. a network moved without a record) stays there.
  let home: BoundBackend | undefined;
  for (const b of c.backends) if (b.target && usable(b) && (await b.check()).length === 0) home = b;
  if (home) return { ...base, action: "unchanged", to: home.layout };
  home = await homeOf(c, network);
  if (!home) return { ...base, action: "failed", detail: "no backend to restore it on" };
  if (!usable(home)) return { ...base, action: "failed", detail: `${home.layout} is not installed here` };
  const missing = await home.check();
  if (dryRun) return { ...base, action: "would repair", to: home.layout, detail: missing.join("; ") };
  await makeWhole(home);
  return { ...base, action: "repaired", to: home.layout, detail: missing.join("; ") };
}

async function eachComponent(
  a: CachedAttachment,
  step: (c: Component) => Promise<StepReport>,
): Promise<AttachmentReport> {
  const report: AttachmentReport = {
    network: a.network,
    containerId: a.containerId,
    ifname: a.ifname,
    steps: [],
    ok: true,
  };
  let components: Component[];
  try {
    components = componentsOf(a);
  } catch (e) {
    report.ok = false;
    report.steps.push({ component: "masquerade", action: "failed", detail: `cached config: ${message(e)}` });
    return report;
  }
  for (const c of components) {
    try {
      report.steps.push(await step(c));
    } catch (e) {
      report.steps.push({ component: c.name, action: "failed", detail: message(e) });
    }
  }
  report.ok = report.steps.every((s) => s.action !== "failed");
  return report;
}

export function migrateAttachment(
  a: CachedAttachment,
  target: Framework,
  dryRun: boolean,
): Promise<AttachmentReport> {
  return eachComponent(a, (c) => migrateComponent(c, target, dryRun));
}

export function restoreAttachment(a: CachedAttachment, dryRun: boolean): Promise<AttachmentReport> {
  return eachComponent(a, (c) => restoreComponent(c, a.network, dryRun));
}

/** Runs `work` over `items`, at most `limit` at a time, results in input order. */
export async function inBatches<T, R>(
  items: readonly T[],
  limit: number,
  work: (t: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]!);
    }
  });
  await Promise.all(lanes);
  return out;
}
