/**
 * The plugin skeleton: reads the CNI environment and stdin, validates them like libcni's skel,
 * calls the plugin's verb and prints the result (in the config's cniVersion) or the error.
 * `runPlugin` is pure (env and stdin in, stdout/exit code out) so a plugin can also be run
 * in-process (IPAM delegation, tests); `pluginMain` wires it to the process.
 */
import { CniError, ErrorCode } from "./errors.js";
import { checkNetns, refuseHostNetns } from "./netns.js";
import { requirePrevResultVersion } from "./prevresult.js";
import { isCIDR, isIP } from "../address/index.js";
import { baseNetConf, validateConfig, type AnySchema } from "./config.js";
import type { NetConf, Result, ValidAttachmentEntry } from "./types.js";
import type { Attachment } from "./attachment.js";
import {
  CURRENT_VERSION,
  SUPPORTED_VERSIONS,
  versionReply,
  formatResult,
  parseResult,
  requireResultAddress,
  versionAtLeast,
} from "./version.js";
import {
  checkKnownArgs,
  parseCniArgs,
  validateContainerId,
  validateIfname,
  validateNetworkName,
} from "./validate.js";

export type Verb = "ADD" | "DEL" | "CHECK" | "GC" | "STATUS";
export type Env = Readonly<Record<string, string | undefined>>;

/** What every verb gets. Fields a verb's env does not require may be empty strings. */
export interface CmdArgs<C = NetConf> {
  command: Verb;
  containerId: string;
  netns: string;
  ifname: string;
  /** Parsed CNI_ARGS (`K=V;…`). */
  args: Record<string, string>;
  /** CNI_PATH split on ":". */
  path: string[];
  /** Parsed and validated config (unknown keys kept). */
  config: C;
  /** stdin exactly as received (what IPAM delegation passes on). */
  rawConfig: string;
  /** The config's cniVersion ("0.1.0" when absent). */
  cniVersion: string;
  /** prevResult in current form, when the config has one. */
  prevResult?: Result;
  /** The environment the plugin runs with (process.env, or the caller's for in-process runs). */
  env: Env;
}

export interface GcArgs<C = NetConf> extends CmdArgs<C> {
  /** From `cni.dev/valid-attachments`: the attachments of this network the runtime still uses. */
  validAttachments: Attachment[];
}

export interface PluginFuncs<C = NetConf> {
  add(args: CmdArgs<C>): Promise<Result>;
  del(args: CmdArgs<C>): Promise<void>;
  check?(args: CmdArgs<C>): Promise<void>;
  /** Default: succeed doing nothing. */
  gc?(args: GcArgs<C>): Promise<void>;
  /** Default: succeed (plugin ready). */
  status?(args: CmdArgs<C>): Promise<void>;
}

export interface PluginAbout<C = NetConf> {
  name: string;
  /** Supported versions (default: all of 0.1.0–1.1.0). */
  versions?: readonly string[];
  /** valibot schema of the plugin's config (default: the common keys only); see `netConf()`. */
  config?: AnySchema<C>;
  /** CNI_ARGS keys the plugin understands; when given, others are refused unless IgnoreUnknown. */
  knownArgs?: readonly string[];
  /**
   * What CNI_NETNS of ADD and CHECK must be, checked before the plugin runs (see netns.ts):
   * "network", any network namespace; "container", one that is not the host's own. Default:
   * unchecked (IPAM and meta plugins that never enter it).
   */
  netns?: "network" | "container";
  /**
   * ADD answers with the prevResult when the config has one (meta plugins; loopback chained):
   * the skeleton then refuses, before the plugin runs, a prevResult the config's version cannot
   * carry (a 0.1.0/0.2.0 result without an address).
   */
  answersWithPrevResult?: boolean;
}

export interface Plugin<C = NetConf> {
  funcs: PluginFuncs<C>;
  about: PluginAbout<C>;
}

/** Bundles a plugin's verbs and description (a plugin module exports this as `plugin`). */
export function definePlugin<C = NetConf>(funcs: PluginFuncs<C>, about: PluginAbout<C>): Plugin<C> {
  return { funcs, about };
}

export interface RunOutput {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const REQUIRED_ENV: Record<string, readonly Verb[]> = {
  CNI_CONTAINERID: ["ADD", "CHECK", "DEL"],
  CNI_NETNS: ["ADD", "CHECK"],
  CNI_IFNAME: ["ADD", "CHECK", "DEL"],
  CNI_PATH: ["ADD", "CHECK", "DEL"],
};

/**
 * Addresses of a prevResult reach ip, nft and iptables: one that is not an address is a bad
 * config (upstream's portmap maps nothing and exits 0), refused before the plugin runs.
 */
function validatePrevResult(r: Result): void {
  const refuse = (field: string, value: string, expected: string): never => {
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `prevResult.${field}: ${JSON.stringify(value)} is not ${expected}`,
    );
  };
  (r.ips ?? []).forEach((ip, i) => {
    if (!isCIDR(ip.address))
      refuse(`ips[${i}].address`, ip.address, "an address with a prefix length, e.g. 10.88.0.2/16");
    if (ip.gateway !== undefined && !isIP(ip.gateway))
      refuse(`ips[${i}].gateway`, ip.gateway, "an IP address");
  });
  (r.routes ?? []).forEach((route, i) => {
    if (!isCIDR(route.dst)) refuse(`routes[${i}].dst`, route.dst, "a CIDR, e.g. 0.0.0.0/0");
    if (route.gw !== undefined && !isIP(route.gw)) refuse(`routes[${i}].gw`, route.gw, "an IP address");
  });
}

function usableForDel(netns: string, kind: "network" | "container"): boolean {
  try {
    return !(checkNetns(netns).isHost && kind === "container");
  } catch {
    return false;
  }
}

function pretty(x: unknown): string {
  return JSON.stringify(x, null, 4) + "\n";
}

function versionsOf(about: PluginAbout<unknown>): readonly string[] {
  return about.versions ?? SUPPORTED_VERSIONS;
}

/** Runs one plugin invocation: env + stdin in, what the plugin prints and its exit code out. */
export async function runPlugin<C>(
  plugin: Plugin<C>,
  env: Env,
  stdin: string | (() => Promise<string>),
): Promise<RunOutput> {
  const { funcs, about } = plugin;
  const versions = versionsOf(about);
  const command = env.CNI_COMMAND ?? "";
  if (command === "") {
    return {
      stdout: "",
      stderr: `CNI ${about.name} plugin (cni-nft)\nCNI protocol versions supported: ${versions.join(", ")}\n`,
      exitCode: 0,
    };
  }
  if (command === "VERSION") {
    return { stdout: versionReply(versions), stderr: "", exitCode: 0 };
  }
  let cniVersion: string | undefined;
  try {
    if (!["ADD", "DEL", "CHECK", "GC", "STATUS"].includes(command)) {
      throw new CniError(ErrorCode.InvalidEnvironment, `unknown CNI_COMMAND: ${command}`);
    }
    const verb = command as Verb;
    const missing = Object.entries(REQUIRED_ENV)
      .filter(([k, verbs]) => verbs.includes(verb) && !env[k])
      .map(([k]) => k);
    if (missing.length) {
      throw new CniError(
        ErrorCode.InvalidEnvironment,
        `required env variables [${missing.join(",")}] missing`,
      );
    }
    const rawConfig = typeof stdin === "string" ? stdin : await stdin();
    let parsed: unknown;
    try {
      parsed = JSON.parse(rawConfig);
    } catch (e) {
      throw new CniError(
        ErrorCode.DecodingFailure,
        `error unmarshall network config: ${(e as Error).message}`,
      );
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new CniError(ErrorCode.DecodingFailure, "error unmarshall network config: not a JSON object");
    }
    const obj = parsed as Record<string, unknown>;
    if (obj.cniVersion !== undefined && typeof obj.cniVersion !== "string") {
      throw new CniError(
        ErrorCode.DecodingFailure,
        "decoding version from network config: cniVersion must be a string",
      );
    }
    const confVersion = obj.cniVersion || "0.1.0";
    if (!versions.includes(confVersion)) {
      throw new CniError(
        ErrorCode.IncompatibleVersion,
        "incompatible CNI versions",
        `config is "${confVersion}", plugin supports [${versions.map((v) => `"${v}"`).join(" ")}]`,
      );
    }
    cniVersion = confVersion;
    const minimum = verb === "CHECK" ? "0.4.0" : verb === "GC" || verb === "STATUS" ? "1.1.0" : undefined;
    if (minimum && !versionAtLeast(confVersion, minimum)) {
      throw new CniError(ErrorCode.IncompatibleVersion, `config version does not allow ${verb}`);
    }
    if (typeof obj.name !== "string") validateNetworkName("");
    validateNetworkName(obj.name as string);
    const containerId = env.CNI_CONTAINERID ?? "";
    const ifname = env.CNI_IFNAME ?? "";
    if (verb === "ADD" || verb === "DEL" || verb === "CHECK") {
      validateContainerId(containerId);
      validateIfname(ifname);
    }
    let netns = env.CNI_NETNS ?? "";
    if (about.netns && (verb === "ADD" || verb === "CHECK")) {
      const check = checkNetns(netns);
      if (about.netns === "container") refuseHostNetns(netns, check);
    } else if (about.netns && verb === "DEL" && netns !== "") {
      // DEL succeeds when things are gone: a namespace that is not one (anymore) is gone, and the
      // host's own was never the container's (ADD refused it): nothing inside it is touched.
      netns = usableForDel(netns, about.netns) ? netns : "";
    }
    const args = parseCniArgs(env.CNI_ARGS);
    if (about.knownArgs) checkKnownArgs(args, about.knownArgs);
    const config = validateConfig((about.config ?? baseNetConf) as AnySchema<C>, parsed);
    const cmd: CmdArgs<C> = {
      command: verb,
      containerId,
      netns,
      ifname,
      args,
      path: (env.CNI_PATH ?? "").split(":").filter((p) => p !== ""),
      config,
      rawConfig,
      cniVersion: confVersion,
      env,
    };
    if (obj.prevResult !== undefined && obj.prevResult !== null) {
      cmd.prevResult = parseResult(obj.prevResult, confVersion);
      requirePrevResultVersion(confVersion, cmd.prevResult.cniVersion);
      validatePrevResult(cmd.prevResult);
      // A plugin that answers ADD with its prevResult: one the config's version cannot carry (a
      // pre-0.3.0 result without addresses) must be refused before it changes anything. A main
      // plugin with IPAM answers with its own result, whatever the prevResult holds.
      if (verb === "ADD" && about.answersWithPrevResult)
        requireResultAddress(confVersion, Boolean(cmd.prevResult.ips?.length), "prevResult");
    }
    switch (verb) {
      case "ADD": {
        const result = await funcs.add(cmd);
        return { stdout: pretty(formatResult(result, confVersion)), stderr: "", exitCode: 0 };
      }
      case "DEL":
        await funcs.del(cmd);
        break;
      case "CHECK":
        if (!funcs.check) throw new CniError(ErrorCode.Internal, `${about.name}: CHECK is not implemented`);
        await funcs.check(cmd);
        break;
      case "GC": {
        const entries = (obj["cni.dev/valid-attachments"] ?? []) as ValidAttachmentEntry[];
        const network = obj.name as string;
        const validAttachments = entries.map((e) => ({
          network,
          containerId: e.containerID,
          ifname: e.ifname,
        }));
        await funcs.gc?.({ ...cmd, validAttachments });
        break;
      }
      case "STATUS":
        await funcs.status?.(cmd);
        break;
    }
    return { stdout: "", stderr: "", exitCode: 0 };
  } catch (e) {
    const err = CniError.from(e);
    const stderr = env.CNI_NFT_DEBUG && e instanceof Error ? `${e.stack ?? e.message}\n` : "";
    return { stdout: pretty(err.toJSON(cniVersion ?? CURRENT_VERSION)), stderr, exitCode: 1 };
  }
}

/**
 * stdin and stdout through file descriptors, not process.stdin/stdout: under Bun (the compiled
 * plugins) setting up those streams costs more than everything else a VERSION or tuning call does
 * (about 14 ms). A non-blocking descriptor (EAGAIN) falls back to the streams.
 */
async function readStdin(): Promise<string> {
  const { readFileSync } = await import("node:fs");
  try {
    return readFileSync(0, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }
}

async function writeAll(fd: 1 | 2, text: string): Promise<void> {
  const { writeSync } = await import("node:fs");
  const buf = Buffer.from(text);
  let off = 0;
  try {
    while (off < buf.length) off += writeSync(fd, buf, off);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EAGAIN") throw e;
    const stream = fd === 1 ? process.stdout : process.stderr;
    await new Promise<void>((res) => stream.write(buf.subarray(off), () => res()));
  }
}

/**
 * Runs the plugin as this process: CNI_* from process.env, config from stdin (or `stdin`, when the
 * caller read it already). Sets the exit code.
 */
export async function pluginMain<C>(
  funcs: PluginFuncs<C>,
  about: PluginAbout<C>,
  stdin?: string,
): Promise<void> {
  const out = await runPlugin({ funcs, about }, process.env, stdin ?? readStdin);
  if (out.stderr) await writeAll(2, out.stderr);
  if (out.stdout) await writeAll(1, out.stdout);
  process.exitCode = out.exitCode;
}
