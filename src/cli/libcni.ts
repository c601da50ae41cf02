/**
 * What a runtime does with CNI, as libcni does it: network config lists from NETCONFPATH, one
 * plugin after another with prevResult, runtimeConfig from capability args, and the result cache
 * (`<cacheDir>/results/<network>-<containerID>-<ifname>`, libcni's "cniCacheV1" format, so podman
 * and cnitool read ours and we read theirs).
 */
import { mkdir, readFile, readdir, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readCache } from "./attachments.js";
import {
  CniError,
  ErrorCode,
  execIpam,
  formatResult,
  parseResult,
  versionAtLeast,
  type ValidAttachmentEntry,
  type Env,
  type Result,
  type Verb,
} from "../cni/index.js";

export interface NetworkConfigList {
  name: string;
  cniVersion: string;
  disableCheck: boolean;
  disableGC: boolean;
  plugins: Record<string, unknown>[];
  /** The list as JSON bytes (what the cache stores). */
  bytes: string;
  file: string;
}

export interface RuntimeConf {
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS pairs. */
  args: [string, string][];
  capabilityArgs: Record<string, unknown>;
  cacheDir: string;
}

export interface Options {
  cniPath: string[];
  /** Base environment for plugins (PATH etc.). */
  env: Env;
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function confError(file: string, msg: string): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, `${file}: ${msg}`);
}

/** Parses a .conflist (or a single .conf/.json turned into a list of one, like libcni). */
export function parseConfList(text: string, file: string): NetworkConfigList {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new CniError(ErrorCode.DecodingFailure, `${file}: invalid JSON: ${(e as Error).message}`);
  }
  if (!isObj(raw)) throw confError(file, "not a JSON object");
  let list: Record<string, unknown> = raw;
  if (!file.endsWith(".conflist")) {
    if (typeof raw.type !== "string" || !raw.type) throw confError(file, "missing 'type'");
    list = { cniVersion: raw.cniVersion, name: raw.name, plugins: [raw] };
  }
  if (typeof list.name !== "string" || !list.name) throw confError(file, "missing 'name'");
  const plugins = list.plugins;
  if (!Array.isArray(plugins) || plugins.length === 0) throw confError(file, "missing or empty 'plugins'");
  for (const [i, p] of plugins.entries()) {
    if (!isObj(p) || typeof p.type !== "string" || !p.type)
      throw confError(file, `plugins[${i}]: missing 'type'`);
  }
  return {
    name: list.name,
    cniVersion: typeof list.cniVersion === "string" ? list.cniVersion : "",
    disableCheck: list.disableCheck === true || list.disableCheck === "true",
    disableGC: list.disableGC === true || list.disableGC === "true",
    plugins: plugins as Record<string, unknown>[],
    bytes: JSON.stringify(list),
    file,
  };
}

/** Finds network `name` in `dir`: .conflist files first, then .conf/.json, each sorted by file name. */
export async function loadNetwork(dir: string, name: string): Promise<NetworkConfigList> {
  let files: string[];
  try {
    files = (await readdir(dir)).sort();
  } catch (e) {
    throw new CniError(ErrorCode.IOFailure, `cannot read NETCONFPATH ${dir}: ${(e as Error).message}`);
  }
  for (const exts of [[".conflist"], [".conf", ".json"]]) {
    for (const f of files.filter((x) => exts.some((e) => x.endsWith(e)))) {
      const file = join(dir, f);
      let list: NetworkConfigList;
      try {
        list = parseConfList(await readFile(file, "utf8"), file);
      } catch {
        continue; // libcni skips files it cannot load while searching
      }
      if (list.name === name) return list;
    }
  }
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    `no net configuration with name "${name}" in ${dir}; 'cni-nft completion networks' lists the networks there, --netconf-path or NETCONFPATH picks another directory`,
  );
}

/** Go's encoding of map[string]interface{}: keys sorted at every level. */
function sortKeys(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(sortKeys);
  if (isObj(x)) {
    return Object.fromEntries(
      Object.keys(x)
        .sort()
        .map((k) => [k, sortKeys(x[k])]),
    );
  }
  return x;
}

/** libcni's buildOneConfig: name/cniVersion/prevResult injected, runtimeConfig from capabilities. */
export function buildOneConfig(
  list: NetworkConfigList,
  plugin: Record<string, unknown>,
  prevResult: Result | undefined,
  rt: RuntimeConf | undefined,
  extra: Record<string, unknown> = {},
): string {
  const conf: Record<string, unknown> = { ...plugin, name: list.name, cniVersion: list.cniVersion, ...extra };
  if (rt) {
    const caps = isObj(plugin.capabilities) ? plugin.capabilities : {};
    const rc: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(rt.capabilityArgs)) if (caps[k] === true) rc[k] = v;
    if (Object.keys(rc).length) conf.runtimeConfig = rc;
  }
  delete conf.prevResult;
  const top = sortKeys(conf) as Record<string, unknown>;
  // prevResult is a Go struct inside the map: its own key order, placed in sorted position.
  if (prevResult) top.prevResult = formatResult(prevResult, list.cniVersion);
  return JSON.stringify(
    Object.fromEntries(Object.entries(top).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  );
}

function pluginEnv(opts: Options, verb: Verb, rt?: RuntimeConf): Env {
  const env: Record<string, string | undefined> = {
    ...opts.env,
    CNI_COMMAND: verb,
    CNI_PATH: opts.cniPath.join(":"),
  };
  if (rt) {
    env.CNI_CONTAINERID = rt.containerId;
    env.CNI_NETNS = rt.netns;
    env.CNI_IFNAME = rt.ifname;
    env.CNI_ARGS = rt.args.map(([k, v]) => `${k}=${v}`).join(";");
  }
  return env;
}

async function invoke(
  list: NetworkConfigList,
  plugin: Record<string, unknown>,
  verb: Verb,
  stdin: string,
  env: Env,
) {
  try {
    return await execIpam(plugin.type as string, verb, stdin, env);
  } catch (e) {
    const err = CniError.from(e);
    throw new CniError(
      err.code,
      `plugin type="${String(plugin.type)}" name="${list.name}" failed (${verb.toLowerCase()}): ${err.message}`,
      err.details,
    );
  }
}

export function cacheFile(cacheDir: string, network: string, containerId: string, ifname: string): string {
  return join(cacheDir, "results", `${network}-${containerId}-${ifname}`);
}

export interface CacheEntry {
  kind: "cniCacheV1";
  containerId: string;
  config: string;
  ifName: string;
  networkName: string;
  netns?: string;
  cniArgs?: [string, string][];
  capabilityArgs?: Record<string, unknown>;
  result?: Record<string, unknown>;
}

async function writeCache(list: NetworkConfigList, rt: RuntimeConf, result: Result): Promise<void> {
  const file = cacheFile(rt.cacheDir, list.name, rt.containerId, rt.ifname);
  await mkdir(join(rt.cacheDir, "results"), { recursive: true, mode: 0o700 });
  const entry: CacheEntry = {
    kind: "cniCacheV1",
    containerId: rt.containerId,
    config: Buffer.from(list.bytes).toString("base64"),
    ifName: rt.ifname,
    networkName: list.name,
    netns: rt.netns,
    ...(rt.args.length ? { cniArgs: rt.args } : {}),
    ...(Object.keys(rt.capabilityArgs).length ? { capabilityArgs: rt.capabilityArgs } : {}),
    result: formatResult(result, list.cniVersion),
  };
  await writeFile(`${file}.tmp`, JSON.stringify(entry), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

/** The cached result of an attachment, in current form (undefined when none). */
export async function readCachedResult(
  list: NetworkConfigList,
  rt: RuntimeConf,
): Promise<Result | undefined> {
  let text: string;
  try {
    text = await readFile(cacheFile(rt.cacheDir, list.name, rt.containerId, rt.ifname), "utf8");
  } catch {
    return undefined;
  }
  try {
    const entry = JSON.parse(text) as CacheEntry | Record<string, unknown>;
    // libcni's cniCacheV1 entry, or an old bare result
    const raw = (entry as CacheEntry).kind === "cniCacheV1" ? (entry as CacheEntry).result : entry;
    return raw ? parseResult(raw, list.cniVersion) : undefined;
  } catch {
    return undefined;
  }
}

/** Every cached attachment of a network (GC's valid attachments). */
export async function cachedAttachments(cacheDir: string, network: string): Promise<ValidAttachmentEntry[]> {
  return (await readCache(cacheDir))
    .filter((c) => c.entry.networkName === network)
    .map((c) => ({ containerID: c.entry.containerId, ifname: c.entry.ifName }));
}

/** ADD: every plugin in order, each result the next one's prevResult; the final result is cached. */
export async function addNetworkList(
  list: NetworkConfigList,
  rt: RuntimeConf,
  opts: Options,
): Promise<Result> {
  let prev: Result | undefined;
  for (const plugin of list.plugins) {
    const stdin = buildOneConfig(list, plugin, prev, rt);
    prev = await invoke(list, plugin, "ADD", stdin, pluginEnv(opts, "ADD", rt));
  }
  const result = prev ?? { cniVersion: list.cniVersion };
  await writeCache(list, rt, result);
  return result;
}

/** DEL: plugins in reverse order with the cached result as prevResult (0.4.0+); cache removed. */
export async function delNetworkList(list: NetworkConfigList, rt: RuntimeConf, opts: Options): Promise<void> {
  const cached = versionAtLeast(list.cniVersion || "0.1.0", "0.4.0")
    ? await readCachedResult(list, rt)
    : undefined;
  for (const plugin of [...list.plugins].reverse()) {
    const stdin = buildOneConfig(list, plugin, cached, rt);
    await invoke(list, plugin, "DEL", stdin, pluginEnv(opts, "DEL", rt));
  }
  await unlink(cacheFile(rt.cacheDir, list.name, rt.containerId, rt.ifname)).catch(() => undefined);
}

/** CHECK (0.4.0+): plugins in order, each with the cached result. */
export async function checkNetworkList(
  list: NetworkConfigList,
  rt: RuntimeConf,
  opts: Options,
): Promise<void> {
  if (!versionAtLeast(list.cniVersion || "0.1.0", "0.4.0")) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `configuration version "${list.cniVersion}" does not support the CHECK command`,
    );
  }
  if (list.disableCheck) return;
  const cached = await readCachedResult(list, rt);
  if (!cached)
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `no cached result for ${list.name}/${rt.containerId}/${rt.ifname}: was it added?`,
    );
  for (const plugin of list.plugins) {
    await invoke(
      list,
      plugin,
      "CHECK",
      buildOneConfig(list, plugin, cached, rt),
      pluginEnv(opts, "CHECK", rt),
    );
  }
}

/** GC (1.1.0+): every plugin gets `cni.dev/valid-attachments`. Returns false when skipped. */
export async function gcNetworkList(
  list: NetworkConfigList,
  valid: ValidAttachmentEntry[],
  opts: Options,
): Promise<boolean> {
  if (!versionAtLeast(list.cniVersion || "0.1.0", "1.1.0") || list.disableGC) return false;
  const errors: string[] = [];
  for (const plugin of list.plugins) {
    const stdin = buildOneConfig(list, plugin, undefined, undefined, { "cni.dev/valid-attachments": valid });
    try {
      await invoke(list, plugin, "GC", stdin, pluginEnv(opts, "GC"));
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  if (errors.length) throw new CniError(ErrorCode.Internal, errors.join("; "));
  return true;
}

/** STATUS (1.1.0+): every plugin; the first failure is the network's status. Returns false when skipped. */
export async function statusNetworkList(list: NetworkConfigList, opts: Options): Promise<boolean> {
  if (!versionAtLeast(list.cniVersion || "0.1.0", "1.1.0")) return false;
  for (const plugin of list.plugins) {
    await invoke(
      list,
      plugin,
      "STATUS",
      buildOneConfig(list, plugin, undefined, undefined),
      pluginEnv(opts, "STATUS"),
    );
  }
  return true;
}
