/**
 * A typed `ip -batch` plan: each command added returns a handle, and the outcome of the run is
 * read through the handles (did this step fail, what did this show print), never through line
 * numbers. A plan is data until it runs: `text()` is exactly what `ip -batch -` reads, so a test
 * compares it with literal expected text without root; `execute` takes an injectable runner.
 */
import type { Runner } from "../process/runner.js";
import { classifyMessage, type MessageKind } from "../process/errors.js";
import { batchError, ipBatch, type IpCommandError, type Prelude } from "./ip.js";

/** Which failure of a step is success: none, "already exists" (ensure), "not found" (remove). */
export type Tolerance = "none" | "exists" | "missing";

export interface Step {
  /** 1-based line of the batch. */
  readonly line: number;
  readonly command: string;
  readonly tolerate: Tolerance;
}

/** A show command; its parsed JSON output is read from the outcome with the same handle. */
export interface Show<T> extends Step {
  readonly show: true;
  /** Never set: carries the output's type. */
  readonly _output?: T;
}

const TOLERATED: Record<Exclude<Tolerance, "none">, MessageKind> = { exists: "exists", missing: "not-found" };

export interface PlanOptions {
  /** The namespace the plan runs in (a path or a name under /run/netns); default: the caller's. */
  netns?: string;
  /** Details (`-d`) in show output: link kind, bridge port flags. */
  details?: boolean;
  /** Written from inside the namespace before ip runs (link sysctls). */
  prelude?: Prelude;
}

export class IpPlan {
  private readonly steps: Step[] = [];
  constructor(readonly options: PlanOptions = {}) {}

  /** A command that must succeed. */
  run(command: string): Step {
    return this.push({ command, tolerate: "none" });
  }

  /** A command that makes sure something is there: "already exists" is success. */
  ensure(command: string): Step {
    return this.push({ command, tolerate: "exists" });
  }

  /** A command that takes something away: "not found" is success. */
  remove(command: string): Step {
    return this.push({ command, tolerate: "missing" });
  }

  /**
   * A show command, printed as JSON. iproute2 prints addresses for the first `addr show` of a
   * batch only, so a plan holds at most one.
   */
  show<T>(command: string, tolerate: Tolerance = "none"): Show<T> {
    if (command.startsWith("addr show") && this.steps.some((s) => s.command.startsWith("addr show")))
      throw new Error("an ip batch prints addresses for its first `addr show` only");
    return this.push({ command, tolerate, show: true }) as Show<T>;
  }

  get commands(): string[] {
    return this.steps.map((s) => s.command);
  }

  get length(): number {
    return this.steps.length;
  }

  /** Exactly what `ip -batch -` reads. */
  text(): string {
    return this.commands.map((c) => `${c}\n`).join("");
  }

  /**
   * Runs the plan in one `ip` process. A plan with a tolerant step runs every line (`-force`), as
   * a later step must not be skipped because an "ensure" found its object; a plan without one
   * stops at the first failure. Rejects with an IpError listing every failure not tolerated.
   */
  async execute(runner?: Runner): Promise<PlanOutcome> {
    const shows = this.steps.filter(isShow);
    const res = await ipBatch(this.commands, {
      force: this.steps.some((s) => s.tolerate !== "none"),
      json: shows.length > 0,
      ...(this.options.details ? { details: true } : {}),
      ...(this.options.netns ? { netns: this.options.netns } : {}),
      ...(this.options.prelude ? { prelude: this.options.prelude } : {}),
      ...(runner ? { runner } : {}),
    });
    const failed = new Map<number, IpCommandError>(res.errors.map((e) => [e.line, e]));
    const bad = res.errors.filter((e) => {
      const step = this.steps[e.line - 1];
      return !step || step.tolerate === "none" || classifyMessage(e.message) !== TOLERATED[step.tolerate];
    });
    if (bad.length) throw batchError(bad, this.options.netns);
    // A failed show prints nothing: outputs belong, in order, to the shows that did not fail.
    const printed = shows.filter((s) => !failed.has(s.line));
    const output = new Map<number, unknown[]>(printed.map((s, i) => [s.line, res.shows[i] ?? []]));
    return new PlanOutcome(failed, output);
  }

  private push(step: Omit<Step, "line"> & { show?: true }): Step {
    if (/[\n\r\0]/.test(step.command))
      throw new Error(`refusing ip command with a line break: ${JSON.stringify(step.command)}`);
    const s = { ...step, line: this.steps.length + 1 };
    this.steps.push(s);
    return s;
  }
}

function isShow(s: Step): s is Show<unknown> {
  return "show" in s;
}

/** What a run did, read through the plan's handles. */
export class PlanOutcome {
  constructor(
    private readonly failures: ReadonlyMap<number, IpCommandError>,
    private readonly output: ReadonlyMap<number, unknown[]>,
  ) {}

  /** The (tolerated) failure of a step, if it failed. */
  failure(step: Step): IpCommandError | undefined {
    return this.failures.get(step.line);
  }

  /** True when the step changed something: it ran and did not fail. */
  changed(step: Step): boolean {
    return !this.failures.has(step.line);
  }

  /** What a show printed, parsed. */
  shown<T>(show: Show<T>): T[] {
    return (this.output.get(show.line) ?? []) as T[];
  }
}
