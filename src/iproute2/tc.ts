/**
 * Traffic control through iproute2's `tc`, batched like `ip`: one `tc -batch -` process per
 * change, and `tc -json` to read qdiscs back. Commands must be built from validated values.
 */
import { argvInNetns, netnsName, systemRunner, type Completed, type Runner } from "../process/runner.js";
import { batchError, IpError, parseBatchErrors, type IpBatchResult } from "./ip.js";

export interface TcOptions {
  /** Run inside this network namespace (a path); default: the caller's. */
  netns?: string;
  /** Keep going after a failed command and return the errors instead of throwing. */
  force?: boolean;
  /** Starts tc; default: the system's runner. */
  runner?: Runner;
}

function tcArgv(netns: string | undefined, args: string[]): string[] {
  // A namespace named under /run/netns is entered by tc itself (-n), as ip does.
  const named = netnsName(netns);
  return named ? ["tc", "-n", named, ...args] : argvInNetns(netns, ["tc", ...args]);
}

async function runTc(argv: string[], opts: TcOptions, stdin?: string): Promise<Completed> {
  try {
    return await (opts.runner ?? systemRunner).run({ argv, ...(stdin !== undefined ? { stdin } : {}) });
  } catch (e) {
    throw new IpError(`could not run tc: ${(e as Error).message}; is iproute2 installed?`, []);
  }
}

/** Runs `tc -batch -` with the given commands. */
export async function tcBatch(commands: string[], opts: TcOptions = {}): Promise<IpBatchResult> {
  for (const c of commands)
    if (/[\n\r\0]/.test(c)) throw new Error(`refusing tc command with a line break: ${JSON.stringify(c)}`);
  if (commands.length === 0) return { shows: [], errors: [] };
  const argv = tcArgv(opts.netns, [...(opts.force ? ["-force"] : []), "-batch", "-"]);
  const res = await runTc(argv, opts, commands.join("\n") + "\n");
  const errors = parseBatchErrors(res.stderr, commands);
  if (res.code !== 0 && errors.length === 0)
    errors.push({ line: 0, command: "", message: res.stderr.trim() || `tc exited with ${res.code}` });
  if (errors.length && !opts.force) throw batchError(errors, opts.netns, "tc");
  return { shows: [], errors };
}

/** A qdisc as `tc -json -d -raw qdisc show` prints it (the fields the plugins read). */
export interface QdiscShow {
  kind: string;
  handle: string;
  dev: string;
  root?: boolean;
  parent?: string;
  options?: {
    rate?: number;
    limit?: number;
    /** tbf: the bucket size in bytes ("12500b/1"). */
    burst?: string;
    /** tbf: the kernel's buffer in scheduler ticks, hexadecimal (with -raw). */
    burst_raw?: string;
    /** htb: the default class minor number, "0x30". */
    default?: string;
  };
}

/** The qdiscs of one device, or of every device when `dev` is omitted. */
export async function showQdiscs(dev?: string, opts: TcOptions = {}): Promise<QdiscShow[]> {
  const argv = tcArgv(opts.netns, ["-json", "-d", "-raw", "qdisc", "show", ...(dev ? ["dev", dev] : [])]);
  const res = await runTc(argv, opts);
  if (res.code !== 0) throw new IpError(`\`tc qdisc show\`: ${res.stderr.trim()}`, []);
  const text = res.stdout.trim();
  return text ? (JSON.parse(text) as QdiscShow[]) : [];
}

/** An htb class: `tc class show` has no JSON for htb, so its text is read (rates in bits/s). */
export interface ClassShow {
  handle: string;
  rate: number;
  ceil: number;
}

const UNITS: Record<string, number> = { "": 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
function bitsOf(text: string): number {
  const m = /^([\d.]+)([KMGT]?)bit$/.exec(text);
  return m ? Number(m[1]) * UNITS[m[2]!]! : NaN;
}

export async function showClasses(dev: string, opts: TcOptions = {}): Promise<ClassShow[]> {
  const res = await runTc(tcArgv(opts.netns, ["class", "show", "dev", dev]), opts);
  if (res.code !== 0) throw new IpError(`\`tc class show\`: ${res.stderr.trim()}`, []);
  const out: ClassShow[] = [];
  for (const line of res.stdout.split("\n")) {
    const m = /^class htb (\S+) .*?rate (\S+) ceil (\S+)/.exec(line);
    if (m) out.push({ handle: m[1]!, rate: bitsOf(m[2]!), ceil: bitsOf(m[3]!) });
  }
  return out;
}
