/** Running CNI plugin executables (ours from dist/bin, upstream's from /usr/lib/cni) in tests. */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { run, type Netns, type RunResult } from "./netns.js";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
/**
 * Our plugin executables: dist/bin (node shims) unless CNI_NFT_BIN points elsewhere; scripts/test.sh
 * runs the integration suite against the compiled binary in dist/compiled.
 */
export const OUR_BIN = process.env["CNI_NFT_BIN"] ?? join(ROOT, "dist", "bin");
export const UPSTREAM_BIN = "/usr/lib/cni";

/** Builds dist/ when our executables are missing (scripts/test.sh builds before testing). */
export async function ensureBuilt(): Promise<void> {
  if (existsSync(join(OUR_BIN, "host-local")) && existsSync(join(ROOT, "dist", "src", "bin", "main.js")))
    return;
  const r = await run(["npm", "run", "--silent", "build"], { env: { ...process.env } });
  if (r.code !== 0) throw new Error(`build failed: ${r.stderr || r.stdout}`);
}

export interface PluginRun extends RunResult {
  json: Record<string, unknown> | undefined;
}

/** Runs plugin executable `file` with CNI env `env` (merged over PATH) and stdin `conf`. */
export async function execPlugin(
  file: string,
  env: Record<string, string>,
  conf: unknown,
): Promise<PluginRun> {
  const r = await run([file], {
    input: typeof conf === "string" ? conf : JSON.stringify(conf),
    env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
  });
  let json: Record<string, unknown> | undefined;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

/** Files of a host-local store directory, with contents. */
export function storeFiles(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  for (const f of readdirSync(dir).sort()) out[f] = readFileSync(join(dir, f), "utf8");
  return out;
}

/** Shape of a JSON value: strings become "<string>", numbers "<number>"; keys and lengths kept. */
export function shape(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(shape);
  if (x && typeof x === "object") {
    return Object.fromEntries(Object.entries(x as Record<string, unknown>).map(([k, v]) => [k, shape(v)]));
  }
  if (typeof x === "string") return "<string>";
  if (typeof x === "number") return "<number>";
  return x;
}

export interface Fixture {
  plugin: string;
  command: string;
  cni_env: Record<string, string>;
  stdin_raw: string;
  stdin: Record<string, unknown>;
  stdout: Record<string, unknown> | null;
  exit_code: number;
}

/** shared/ sits beside the repository (in CI too); /work/shared is where it lives on dev machines. */
export const FIXTURES_DIR =
  [join(ROOT, "..", "shared", "fixtures", "podman-4.3-cni"), "/work/shared/fixtures/podman-4.3-cni"].find(
    (d) => existsSync(d),
  ) ?? join(ROOT, "..", "shared", "fixtures", "podman-4.3-cni");

/** The podman invocations recorded for `plugin`; none found is an error, never an empty replay. */
export function loadFixtures(plugin: string): { name: string; fx: Fixture }[] {
  const names = existsSync(FIXTURES_DIR)
    ? readdirSync(FIXTURES_DIR).filter((f) => f.startsWith(`${plugin}-`) && f.endsWith(".json"))
    : [];
  if (names.length === 0) throw new Error(`no podman fixtures for ${plugin} in ${FIXTURES_DIR}`);
  return names
    .sort()
    .map((name) => ({ name, fx: JSON.parse(readFileSync(join(FIXTURES_DIR, name), "utf8")) as Fixture }));
}

/* Running plugins the way a runtime does: env + JSON on stdin, inside a "host" namespace. */

export interface CniCall {
  containerId: string;
  netns?: string;
  ifname?: string;
  args?: string;
  /** Directory of plugins; default ours. */
  bin?: string;
  /** CNI_PATH; default: bin. */
  path?: string;
  /** Command the plugin runs under (e.g. strace with fault injection). */
  wrap?: string[];
  /** More environment (e.g. CNI_NFT_RESIDENT_SOCKET). */
  env?: Record<string, string>;
  /**
   * Enter the host namespace with nsenter (network namespace only) instead of `ip netns exec`,
   * which also makes a mount namespace of its own per run: the resident daemon serves only
   * callers in its own mount namespace.
   */
  nsenter?: boolean;
  /** The plugin's working directory (a runtime's own; default this process's). */
  cwd?: string;
}

export interface CniResult {
  code: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | undefined;
}

export async function cni(
  host: Netns,
  plugin: string,
  verb: string,
  conf: object,
  call: CniCall,
): Promise<CniResult> {
  const bin = call.bin ?? OUR_BIN;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env["PATH"],
    CNI_COMMAND: verb,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns ?? "",
    CNI_IFNAME: call.ifname ?? "eth0",
    CNI_ARGS: call.args ?? "",
    CNI_PATH: call.path ?? bin,
    ...call.env,
  };
  const argv = [...(call.wrap ?? []), `${bin}/${plugin}`];
  const r = await run(call.nsenter ? ["nsenter", `--net=${host.path}`, "--", ...argv] : host.argv(argv), {
    input: JSON.stringify(conf),
    env,
    timeoutMs: 60_000,
    cwd: call.cwd,
  });
  let json: Record<string, unknown> | undefined;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { code: r.code, stdout: r.stdout, stderr: r.stderr, json };
}

/** Like cni() but fails the test with the plugin's output when it does not succeed. */
export async function cniOk(
  host: Netns,
  plugin: string,
  verb: string,
  conf: object,
  call: CniCall,
): Promise<Record<string, unknown>> {
  const r = await cni(host, plugin, verb, conf, call);
  if (r.code !== 0) throw new Error(`${plugin} ${verb} failed (${r.code}): ${r.stdout} ${r.stderr}`);
  return r.json ?? {};
}

/** A temporary directory removed by the returned function. */
export function tempDir(tag: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `cni-nft-${tag}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** nft ruleset and iptables rules of a namespace, for before/after comparisons. */
export async function firewallState(ns: Netns): Promise<string> {
  const nft = await ns.run(["nft", "--stateless", "list", "ruleset"]);
  const v4 = await ns.run(["iptables-save"]);
  const v6 = await ns.run(["ip6tables-save"]);
  const strip = (s: string): string =>
    s
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .join("\n");
  return [nft.stdout, strip(v4.stdout), strip(v6.stdout)].join("\n---\n");
}
