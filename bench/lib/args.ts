/**
 * The bench scripts' command lines (node:util parseArgs, strict): `--help` prints the usage and
 * exits 0; an unknown option, an argument too many or a value of the wrong kind prints what is
 * wrong and the usage and exits 2, before anything runs: a bench takes minutes, a typo must not
 * start one.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;
const HELP = { help: { type: "boolean", short: "h" } } as const;

/** What a script takes: its usage text, its options, how many positional arguments at most. */
export interface BenchCli<O extends Options> {
  usage: string;
  options?: O;
  maxPositionals?: number;
}

/** Prints `problem` and the usage to stderr and exits 2. */
export function usageError(usage: string, problem: string): never {
  process.stderr.write(`${problem}\n\n${usage.trim()}\n`);
  process.exit(2);
}

interface Config<O extends Options> {
  args: string[];
  options: O & typeof HELP;
  allowPositionals: true;
  strict: true;
}
type Values<O extends Options> = ReturnType<typeof parseArgs<Config<O>>>["values"];

/** Parses process.argv as `cli` says, or exits (usage on --help; a usage error otherwise). */
export function benchArgs<const O extends Options>(
  cli: BenchCli<O>,
): { values: Values<O>; positionals: string[] } {
  const config: Config<O> = {
    args: process.argv.slice(2),
    options: { ...(cli.options ?? ({} as O)), ...HELP },
    allowPositionals: true,
    strict: true,
  };
  let parsed: ReturnType<typeof parseArgs<Config<O>>>;
  try {
    parsed = parseArgs(config);
  } catch (e) {
    usageError(cli.usage, (e as Error).message);
  }
  if ((parsed.values as { help?: boolean }).help) {
    process.stdout.write(`${cli.usage.trim()}\n`);
    process.exit(0);
  }
  const max = cli.maxPositionals ?? 0;
  if (parsed.positionals.length > max)
    usageError(cli.usage, `unexpected argument ${JSON.stringify(parsed.positionals[max])}`);
  return { values: parsed.values, positionals: parsed.positionals };
}

/** A whole number of at least `min` from an argument (its default when absent), or a usage error. */
export function intArg(
  usage: string,
  name: string,
  value: string | undefined,
  fallback: number,
  min = 0,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === "" || !Number.isInteger(n) || n < min)
    usageError(usage, `${name} must be a whole number of at least ${min}, not ${JSON.stringify(value)}`);
  return n;
}

/** A comma-separated list of whole numbers (populations), or a usage error. */
export function intListArg(usage: string, name: string, value: string): number[] {
  return value.split(",").map((x) => intArg(usage, name, x, 0));
}

/** One of `choices`, or a usage error. */
export function choiceArg<const C extends string>(
  usage: string,
  name: string,
  value: string | undefined,
  choices: readonly C[],
): C | undefined {
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value))
    usageError(usage, `${name} must be one of ${choices.join(", ")}, not ${JSON.stringify(value)}`);
  return value as C;
}
