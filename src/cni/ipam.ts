/**
 * IPAM delegation: run the IPAM plugin named by `ipam.type` found in CNI_PATH, with the same stdin
 * and environment (CNI_COMMAND replaced). When the binary found is one of ours (a cni-nft shim or
 * the multi-call binary itself) and an in-process loader is registered for the type, the plugin
 * runs in this process through the same `runPlugin` path, so behaviour is identical (set
 * CNI_NFT_IPAM_INPROCESS=0 to always exec).
 */
import { CniError, ErrorCode } from "./errors.js";
import type { CmdArgs, Env, Plugin, RunOutput, Verb } from "./skel.js";
import type { Result } from "./types.js";
import { parseResult } from "./version.js";

/** A marker every cni-nft executable shim contains, to recognise our own binaries. */
export const SHIM_MARKER = "cni-nft-multicall";

type Loader = () => Promise<Plugin<unknown>>;
const loaders = new Map<string, Loader>();

/** Registers a plugin that may run in-process when its binary in CNI_PATH is ours. */
export function registerInProcessIpam(type: string, loader: Loader): void {
  loaders.set(type, loader);
}

/** Finds an executable named `type` in the CNI_PATH directories (like libcni's FindInPath). */
export async function findInPath(type: string, path: readonly string[]): Promise<string> {
  const { access, constants } = await import("node:fs/promises");
  if (type === "" || type.includes("/")) {
    throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid plugin name "${type}"`);
  }
  if (path.length === 0) throw new CniError(ErrorCode.InvalidEnvironment, "no paths provided");
  for (const dir of path) {
    const full = `${dir.replace(/\/+$/, "")}/${type}`;
    try {
      await access(full, constants.X_OK);
      return full;
    } catch {
      /* next */
    }
  }
  throw new CniError(ErrorCode.Internal, `failed to find plugin "${type}" in path [${path.join(" ")}]`);
}

async function isOurs(file: string): Promise<boolean> {
  const { realpath, open } = await import("node:fs/promises");
  try {
    const real = await realpath(file);
    if (real === (await realpath(process.execPath)) && !/\/(node|bun)$/.test(real)) return true;
    const fh = await open(real, "r");
    try {
      const buf = Buffer.alloc(4096);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      return buf.subarray(0, bytesRead).toString("latin1").includes(SHIM_MARKER);
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}

async function execFileWithInput(file: string, env: Env, input: string): Promise<RunOutput> {
  const { systemRunner } = await import("../process/runner.js");
  const done = await systemRunner.run({ argv: [file], stdin: input, env });
  return { stdout: done.stdout, stderr: done.stderr, exitCode: done.code };
}

function errorFrom(type: string, out: RunOutput): CniError {
  try {
    const e = JSON.parse(out.stdout) as { code?: unknown; msg?: unknown; details?: unknown };
    if (typeof e.code === "number" && typeof e.msg === "string") {
      return new CniError(e.code, e.msg, typeof e.details === "string" ? e.details : "");
    }
  } catch {
    /* not JSON */
  }
  const text = (out.stdout + out.stderr).trim();
  return new CniError(ErrorCode.Internal, `${type} failed (exit ${out.exitCode})${text ? `: ${text}` : ""}`);
}

/**
 * Runs IPAM plugin `type` with verb `verb`, stdin `rawStdin` and environment `env` (CNI_COMMAND is
 * set to `verb`; CNI_PATH is read from `env`). ADD resolves with the result in current form
 * (parsed per the config's cniVersion); other verbs resolve with undefined. A failure rejects with
 * the plugin's CniError.
 */
export async function execIpam(
  type: string,
  verb: Verb,
  rawStdin: string,
  env: Env,
): Promise<Result | undefined> {
  const path = (env.CNI_PATH ?? "").split(":").filter((p) => p !== "");
  const file = await findInPath(type, path);
  const childEnv: Env = { ...env, CNI_COMMAND: verb };
  let out: RunOutput;
  const loader = loaders.get(type);
  if (loader && env.CNI_NFT_IPAM_INPROCESS !== "0" && (await isOurs(file))) {
    const { runPlugin } = await import("./skel.js");
    out = await runPlugin(await loader(), childEnv, rawStdin);
  } else {
    out = await execFileWithInput(file, childEnv, rawStdin);
  }
  if (out.exitCode !== 0) throw errorFrom(type, out);
  if (verb !== "ADD") return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(out.stdout);
  } catch {
    throw new CniError(ErrorCode.DecodingFailure, `${type}: could not parse its result`, out.stdout);
  }
  let version: string | undefined;
  try {
    version = (JSON.parse(rawStdin) as { cniVersion?: string }).cniVersion;
  } catch {
    /* the plugin would have failed */
  }
  return parseResult(raw, version || "0.1.0");
}

/** Delegates the current verb to the config's `ipam.type` with the same stdin and env. */
export async function delegateIpam(
  args: CmdArgs<{ ipam?: { type?: string } }>,
  verb: Verb = args.command,
): Promise<Result | undefined> {
  const type = args.config.ipam?.type;
  if (!type) throw new CniError(ErrorCode.InvalidNetworkConfig, "missing ipam.type");
  return execIpam(type, verb, args.rawConfig, args.env);
}
