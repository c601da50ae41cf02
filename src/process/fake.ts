/**
 * A Runner for tests: records every command (argv, stdin, namespace) and answers from a script,
 * so code that drives ip, iptables or nft can be tested without root against the exact commands
 * and input it would send.
 */
import { ProcessError } from "./errors.js";
import type { Command, Completed, Runner } from "./runner.js";

export interface RecordedCommand {
  argv: string[];
  stdin: string;
  netns?: string;
  env?: Readonly<Record<string, string | undefined>>;
}

/** What a scripted command answers: how it ended, or a failure to start it. */
export type Answer = Partial<Completed> | ProcessError;
export type Matcher = readonly string[] | ((cmd: RecordedCommand) => boolean);
type Responder = Answer | ((cmd: RecordedCommand) => Answer | Promise<Answer>);

interface Rule {
  match: Matcher;
  respond: Responder;
  once: boolean;
}

export class FakeRunner implements Runner {
  /** Every command run, in order. */
  readonly calls: RecordedCommand[] = [];
  private readonly rules: Rule[] = [];

  /**
   * @param fallback answer for a command no rule matches; by default such a command rejects
   * (a test should say what each command answers).
   */
  constructor(private readonly fallback?: Answer) {}

  /** Answers every command whose argv starts with `match` (or that `match` accepts). */
  on(match: Matcher, respond: Responder): this {
    this.rules.push({ match, respond, once: false });
    return this;
  }

  /** Answers the next matching command only; one-shot rules are tried before standing ones. */
  once(match: Matcher, respond: Responder): this {
    this.rules.push({ match, respond, once: true });
    return this;
  }

  /** The recorded commands as `argv` lines joined by spaces (for literal comparisons). */
  commandLines(): string[] {
    return this.calls.map((c) => (c.netns ? `[${c.netns}] ` : "") + c.argv.join(" "));
  }

  async run(cmd: Command): Promise<Completed> {
    const rec: RecordedCommand = {
      argv: [...cmd.argv],
      stdin: cmd.stdin ?? "",
      ...(cmd.netns !== undefined ? { netns: cmd.netns } : {}),
      ...(cmd.env !== undefined ? { env: cmd.env } : {}),
    };
    this.calls.push(rec);
    const rule = this.find(rec, true) ?? this.find(rec, false);
    let answer: Answer | undefined;
    if (rule) {
      if (rule.once) this.rules.splice(this.rules.indexOf(rule), 1);
      answer = typeof rule.respond === "function" ? await rule.respond(rec) : rule.respond;
    } else answer = this.fallback;
    if (answer === undefined) throw new Error(`FakeRunner: no answer scripted for: ${rec.argv.join(" ")}`);
    if (answer instanceof ProcessError) throw answer;
    return { stdout: "", stderr: "", code: 0, ...answer };
  }

  private find(rec: RecordedCommand, once: boolean): Rule | undefined {
    return this.rules.find((r) => r.once === once && matches(r.match, rec));
  }
}

function matches(m: Matcher, rec: RecordedCommand): boolean {
  if (typeof m === "function") return m(rec);
  return m.every((word, i) => rec.argv[i] === word);
}

/** A failure to start the program, as the real runner reports a missing binary. */
export function notFound(argv0: string): ProcessError {
  return new ProcessError("not-found", [argv0], `${argv0}: not found`);
}
