/**
 * Links, addresses and routes through iproute2, batched: Node cannot call setns or speak
 * rtnetlink without a native addon, so every change is an `ip -batch` run, one process per
 * namespace per plugin call. A namespace given as a path is entered with nsenter.
 */
import { classifyMessage } from "../process/errors.js";
import { netnsName, systemRunner, type Runner } from "../process/runner.js";

export interface IpBatchOptions {
  /** Run inside this network namespace (a path); default: the caller's. */
  netns?: string;
  /**
   * Keep going after a failed command. Errors are returned per line instead of thrown, so a
   * caller can accept "File exists" for commands that ensure something is there.
   */
  force?: boolean;
  /** Show commands print JSON (one array per show command, in order). */
  json?: boolean;
  /** Details (`-d`) in show output: link kind, bridge port flags. */
  details?: boolean;
  /** `-4` or `-6`: the family of commands that cannot tell it from their addresses (rules). */
  family?: 4 | 6;
  /** Starts ip; default: the system's runner. */
  runner?: Runner;
  /** Shell lines run in the namespace before ip replaces the shell (see {@link Prelude}). */
  prelude?: Prelude;
}

/**
 * What must be written from inside the namespace before ip runs (per-namespace sysctls of a link
 * that is not up yet): a shell script and its positional arguments, outside values only as
 * arguments. The shell then execs ip: still one process.
 */
export interface Prelude {
  script: string;
  args: readonly string[];
}

export interface IpCommandError {
  /** 1-based line of the batch. */
  line: number;
  command: string;
  message: string;
}

export interface IpBatchResult {
  /** Parsed output of each show command, in order. */
  shows: unknown[][];
  errors: IpCommandError[];
}

export class IpError extends Error {
  override readonly name = "IpError";
  constructor(
    message: string,
    readonly errors: IpCommandError[],
  ) {
    super(message);
  }
  /** True when every failed command failed because its object already exists. */
  get onlyExists(): boolean {
    return this.errors.every((e) => classifyMessage(e.message) === "exists");
  }
  get notFound(): boolean {
    return this.errors.some((e) => classifyMessage(e.message) === "not-found");
  }
  /** True when the batch failed only because its network namespace no longer exists. */
  get netnsGone(): boolean {
    return this.errors.length > 0 && this.errors.every((e) => classifyMessage(e.message) === "netns-gone");
  }
}

/**
 * Runs `ip -batch -`. Commands must be built from validated values (interface names, addresses):
 * a newline inside one would start another command.
 */
export async function ipBatch(commands: string[], opts: IpBatchOptions = {}): Promise<IpBatchResult> {
  for (const c of commands)
    if (/[\n\r\0]/.test(c)) throw new Error(`refusing ip command with a line break: ${JSON.stringify(c)}`);
  const flags = [
    ...(opts.force ? ["-force"] : []),
    ...(opts.json ? ["-json"] : []),
    ...(opts.details ? ["-d"] : []),
    ...(opts.family ? [`-${opts.family}`] : []),
  ];
  // A namespace named under /run/netns is entered by ip itself (-n): one exec instead of two.
  const named = netnsName(opts.netns);
  const stdin = commands.join("\n") + "\n";
  let res;
  const where = opts.netns ? { netns: opts.netns } : {};
  try {
    res = await (opts.runner ?? systemRunner).run(
      opts.prelude
        ? {
            argv: [
              "sh",
              "-c",
              `${opts.prelude.script}\nexec ip ${flags.join(" ")} -batch -`,
              "sh",
              ...opts.prelude.args,
            ],
            stdin,
            ...where,
          }
        : named
          ? { argv: ["ip", "-n", named, ...flags, "-batch", "-"], stdin }
          : { argv: ["ip", ...flags, "-batch", "-"], stdin, ...where },
    );
  } catch (e) {
    throw new IpError(`could not run ip: ${(e as Error).message}; is iproute2 installed?`, []);
  }
  return interpretBatch(res, commands, opts);
}

/**
 * What a finished `ip -batch` run means: its per-line errors and, with `json`, the output of each
 * show command. Throws unless `force`.
 */
function interpretBatch(
  res: { stdout: string; stderr: string; code: number },
  commands: string[],
  opts: Pick<IpBatchOptions, "json" | "force" | "netns">,
): IpBatchResult {
  const errors = parseBatchErrors(res.stderr, commands);
  if (res.code !== 0 && errors.length === 0)
    errors.push({ line: 0, command: "", message: res.stderr.trim() || `ip exited with ${res.code}` });
  const shows: unknown[][] = [];
  if (opts.json)
    for (const line of res.stdout.split("\n")) {
      const t = line.trim();
      if (t.startsWith("[")) shows.push(JSON.parse(t) as unknown[]);
    }
  if (errors.length && !opts.force) throw batchError(errors, opts.netns);
  return { shows, errors };
}

export function batchError(errors: IpCommandError[], netns?: string, tool = "ip"): IpError {
  const where = netns ? ` in ${netns}` : "";
  const text = errors
    .map((e) => (e.command ? `\`${tool} ${e.command}\`${where}: ${e.message}` : e.message))
    .join("; ");
  return new IpError(text, errors);
}

/** Splits stderr of `ip -batch` into per-line errors ("…message…\nCommand failed -:N"). */
export function parseBatchErrors(stderr: string, commands: string[]): IpCommandError[] {
  const errors: IpCommandError[] = [];
  let pending: string[] = [];
  for (const line of stderr.split("\n")) {
    const m = /^Command failed -:(\d+)$/.exec(line.trim());
    if (m) {
      const n = Number(m[1]);
      errors.push({ line: n, command: commands[n - 1] ?? "", message: pending.join(" ").trim() || "failed" });
      pending = [];
    } else if (line.trim()) pending.push(line.trim());
  }
  return errors;
}
