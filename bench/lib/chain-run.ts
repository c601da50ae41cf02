/**
 * A chain of plugins run as libcni runs it: VERSION then the verb per plugin, prevResult threaded
 * through ADD, DEL in reverse with the final result. Synchronous for timing (nothing else runs
 * in the driver meanwhile), asynchronous for filling a host with many containers at once.
 */
import { spawn, spawnSync } from "node:child_process";

export type Conf = Record<string, unknown>;

export interface Flavour {
  /** What --only names it by (FLAVOUR_KEYS in chain-flavours.ts); stable across runs. */
  key: string;
  /** What the tables print. */
  label: string;
  /** Directory of the plugin executables (CNI_PATH). */
  bin: string;
  chain: Conf[];
  /** Environment of every plugin run of this flavour (e.g. CNI_NFT_LIBNFTABLES=off). */
  env?: Record<string, string>;
  /** The plugins are clients of a resident daemon the flavour's driver starts (docs/resident.md). */
  resident?: boolean;
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

interface Call {
  argv: string[];
  input: string;
  env: Record<string, string | undefined>;
}

function calls(
  f: Flavour,
  verb: "ADD" | "DEL",
  id: string,
  netns: string,
  wrap: readonly string[],
): Array<{ conf: Conf; version: Call; call: (prev: unknown) => Call }> {
  const env = {
    ...f.env,
    PATH: process.env["PATH"],
    CNI_CONTAINERID: id,
    CNI_NETNS: netns,
    CNI_IFNAME: "eth0",
    CNI_PATH: f.bin,
    CNI_ARGS: "IgnoreUnknown=1",
  };
  const plugins = verb === "ADD" ? f.chain : [...f.chain].reverse();
  return plugins.map((conf) => {
    const argv = [...wrap, `${f.bin}/${String(conf["type"])}`];
    return {
      conf,
      version: { argv, input: JSON.stringify(conf), env: { ...env, CNI_COMMAND: "VERSION" } },
      call: (prev: unknown) => ({
        argv,
        input: JSON.stringify(prev !== undefined ? { ...conf, prevResult: prev } : conf),
        env: { ...env, CNI_COMMAND: verb },
      }),
    };
  });
}

function failed(f: Flavour, conf: Conf, verb: string, out: string, err: string): Error {
  return new Error(`${f.label}: ${String(conf["type"])} ${verb} failed: ${out} ${err}`);
}

/** Runs the chain; returns the final result of an ADD (DEL returns what it was given). */
export function runChain(
  f: Flavour,
  verb: "ADD" | "DEL",
  id: string,
  netns: string,
  prev?: unknown,
  wrap: readonly string[] = [],
): unknown {
  let result = prev;
  for (const { conf, version, call } of calls(f, verb, id, netns, wrap)) {
    spawnSync(version.argv[0]!, version.argv.slice(1), { input: version.input, env: version.env });
    const c = call(result);
    const r = spawnSync(c.argv[0]!, c.argv.slice(1), { input: c.input, env: c.env, encoding: "utf8" });
    if (r.status !== 0) throw failed(f, conf, verb, r.stdout, r.stderr);
    if (verb === "ADD") result = JSON.parse(r.stdout) as unknown;
  }
  return result;
}

function runAsync(c: Call): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(c.argv[0]!, c.argv.slice(1), { env: c.env });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    child.on("close", (code) => resolve({ code: code ?? 1, out, err }));
    child.stdin.on("error", () => undefined);
    child.stdin.end(c.input);
  });
}

/** The same, without blocking the driver: several chains run at once. */
export async function runChainAsync(
  f: Flavour,
  verb: "ADD" | "DEL",
  id: string,
  netns: string,
  prev?: unknown,
): Promise<unknown> {
  let result = prev;
  for (const { conf, version, call } of calls(f, verb, id, netns, [])) {
    await runAsync(version);
    const r = await runAsync(call(result));
    if (r.code !== 0) throw failed(f, conf, verb, r.out, r.err);
    if (verb === "ADD") result = JSON.parse(r.out) as unknown;
  }
  return result;
}

/** Processes in an `strace -f -e trace=execve` log: distinct pids with a successful execve. */
export function processesOf(log: string): number {
  const pids = new Set<string>();
  for (const line of log.split("\n"))
    if (/execve\(/.test(line) && / = 0$/.test(line)) pids.add(line.split(/\s+/)[0]!);
  return pids.size;
}
