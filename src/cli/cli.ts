/**
 * cni-nft: the operator CLI, like cnitool (entry: main.ts). `cni-nft add|del|check|gc|status NETWORK [NETNS]`.
 * Environment as cnitool: NETCONFPATH (default /etc/cni/net.d), CNI_PATH (default /opt/cni/bin),
 * CAP_ARGS (JSON capability args), CNI_ARGS (K=V;…), CNI_IFNAME (default eth0),
 * CNI_CONTAINERID (default derived from NETNS), CNI_CACHE_DIR (default /var/lib/cni).
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import {
  CniError,
  ErrorCode,
  formatResult,
  parseCniArgs,
  validateContainerId,
  validateIfname,
  type Result,
} from "../cni/index.js";
import {
  addNetworkList,
  cachedAttachments,
  checkNetworkList,
  delNetworkList,
  gcNetworkList,
  loadNetwork,
  statusNetworkList,
  type Options,
  type RuntimeConf,
} from "./libcni.js";

const COMMANDS = ["add", "del", "check", "gc", "status"] as const;
type Command = (typeof COMMANDS)[number];

const ENV_HELP = `Environment (as cnitool):
  NETCONFPATH      directory of .conflist/.conf/.json files   (default /etc/cni/net.d)
  CNI_PATH         plugin directories, ':'-separated          (default /opt/cni/bin)
  CNI_IFNAME       interface name in the container            (default eth0)
  CNI_ARGS         K=V;K2=V2 passed to every plugin
  CAP_ARGS         JSON object of capability args, e.g. {"portMappings":[...]}
  CNI_CONTAINERID  container ID                               (default cnitool-<hash of NETNS>)
  CNI_CACHE_DIR    libcni cache directory                     (default /var/lib/cni)

Options:
  --json           machine-readable output (results and errors as JSON on stdout)
  --ifname NAME, --container-id ID, --netconf-path DIR, --cni-path DIRS, --cache-dir DIR
                   override the corresponding environment variable
  -h, --help       this help`;

const HELP: Record<Command | "main", string> = {
  main: `Usage: cni-nft COMMAND NETWORK [NETNS] [options]

Commands:
  add NETWORK NETNS     attach the container network namespace NETNS to NETWORK; prints the result
  del NETWORK NETNS     detach it (prevResult from the cache); removes the cached result
  check NETWORK NETNS   verify the attachment (cniVersion >= 0.4.0; prevResult from the cache)
  gc NETWORK            garbage-collect: attachments in the cache are the valid ones (cniVersion >= 1.1.0)
  gc --all              the same for every network of the config directory, with progress
  status NETWORK        ask every plugin whether the network is ready (cniVersion >= 1.1.0)
  install               copy the plugins into /opt/cni/bin (and a conflist into /etc/cni/net.d)
  translate [FILE]      iptables-save output into an nft script for an own table (--apply loads it)
  list [NETWORK...]     every attachment on the host with its live state (--check, --json)
  inspect WHAT          everything the host holds for a container ID, address or host port
  completion bash|zsh   a shell completion script

Host commands (docs/migration.md):
  migrate --to nftables|iptables [--dry-run] [NETWORK...]   move cached attachments' host state
  restore [--dry-run] [NETWORK...]                          re-create it after a firewall flush or reload
  doctor                                                    what on this host will break containers
  resident [--socket PATH] [--idle-exit SECONDS]            serve plugin calls from a warm process (docs/resident.md)

NETNS is a path (/run/netns/x) or a name under /run/netns. 'cni-nft COMMAND --help' for details.

Examples:
  cni-nft add podman web        attach /run/netns/web to the network "podman"
  cni-nft list                  what is attached on this host

${ENV_HELP}`,
  add: `Usage: cni-nft add NETWORK NETNS [options]

Runs ADD for every plugin of NETWORK in order, each plugin's result being the next one's
prevResult, and caches the final result in CNI_CACHE_DIR/results/NETWORK-CONTAINERID-IFNAME.

Example:
  ip netns add web && CNI_CONTAINERID=web cni-nft add podman web

${ENV_HELP}`,
  del: `Usage: cni-nft del NETWORK NETNS [options]

Runs DEL for every plugin of NETWORK in reverse order, with the cached result as prevResult
(cniVersion >= 0.4.0), then removes the cached result. Succeeds when already deleted.

Example:
  cni-nft del podman web --container-id web

${ENV_HELP}`,
  check: `Usage: cni-nft check NETWORK NETNS [options]

Runs CHECK for every plugin of NETWORK with the cached result as prevResult. Needs
cniVersion >= 0.4.0 and a cached result (from 'cni-nft add').

Example:
  cni-nft check podman web --container-id web

${ENV_HELP}`,
  gc: `Usage: cni-nft gc NETWORK [options]

Runs GC for every plugin of NETWORK with cni.dev/valid-attachments set to the attachments that
have a cached result; plugins release everything else. Skipped below cniVersion 1.1.0.

Example:
  cni-nft gc podman

${ENV_HELP}`,
  status: `Usage: cni-nft status NETWORK [options]

Runs STATUS for every plugin of NETWORK; succeeds when all are ready. Skipped below cniVersion 1.1.0.

Example:
  cni-nft status podman

${ENV_HELP}`,
};

interface Parsed {
  command: Command | undefined;
  positional: string[];
  json: boolean;
  help: boolean;
  opts: Record<string, string>;
}

const VALUE_OPTS = ["ifname", "container-id", "netconf-path", "cni-path", "cache-dir"] as const;
const OPTIONS = {
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  ...Object.fromEntries(VALUE_OPTS.map((o) => [o, { type: "string" }])),
} as const satisfies ParseArgsConfig["options"];

function usageError(msg: string): CniError {
  return new CniError(ErrorCode.InvalidEnvironment, msg);
}

/**
 * Options anywhere (`--ifname X` or `--ifname=X`), the first word the command, the rest
 * positional; `help` as a word is --help. Not strict, so that each refusal says what to fix.
 */
export function parseArgv(argv: string[]): Parsed {
  const p: Parsed = { command: undefined, positional: [], json: false, help: false, opts: {} };
  const { tokens } = parseArgs({
    args: argv,
    options: OPTIONS,
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  for (const t of tokens) {
    if (t.kind === "option") {
      const written = t.inlineValue ? `${t.rawName}=${t.value ?? ""}` : t.rawName;
      if ((t.name === "json" || t.name === "help") && !t.inlineValue) {
        if (t.name === "json") p.json = true;
        else p.help = true;
      } else if ((VALUE_OPTS as readonly string[]).includes(t.name)) {
        if (t.value === undefined) throw usageError(`option --${t.name} needs a value`);
        p.opts[t.name] = t.value;
      } else throw usageError(`unknown option ${written}`);
    } else if (t.kind === "positional") {
      if (t.value === "help") p.help = true;
      else if (p.command === undefined && p.positional.length === 0) {
        if (!(COMMANDS as readonly string[]).includes(t.value))
          throw usageError(`unknown command "${t.value}" (try --help)`);
        p.command = t.value as Command;
      } else p.positional.push(t.value);
    }
  }
  return p;
}

function netnsPath(arg: string): string {
  if (arg.includes("/")) return resolve(arg);
  for (const dir of ["/run/netns", "/var/run/netns"]) if (existsSync(`${dir}/${arg}`)) return `${dir}/${arg}`;
  return resolve(arg);
}

function summary(r: Result): string {
  const lines: string[] = [];
  for (const [i, itf] of (r.interfaces ?? []).entries()) {
    lines.push(
      `interface ${i}: ${itf.name}${itf.mac ? ` ${itf.mac}` : ""}${itf.sandbox ? ` (in ${itf.sandbox})` : ""}`,
    );
  }
  for (const ip of r.ips ?? []) {
    const where =
      ip.interface !== undefined ? ` on ${r.interfaces?.[ip.interface]?.name ?? `#${ip.interface}`}` : "";
    lines.push(`ip ${ip.address}${ip.gateway ? ` gateway ${ip.gateway}` : ""}${where}`);
  }
  for (const rt of r.routes ?? []) lines.push(`route ${rt.dst}${rt.gw ? ` via ${rt.gw}` : ""}`);
  if (r.dns?.nameservers?.length) lines.push(`dns ${r.dns.nameservers.join(" ")}`);
  return lines.join("\n") + "\n";
}

/** What plugins get from the CLI's environment: PATH, and where cni-nft keeps its records. */
export function pluginEnv(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = { PATH: env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" };
  for (const k of ["CNI_NFT_NETWORKS_DIR", "CNI_NFT_STATE_DIR"]) if (env[k] !== undefined) out[k] = env[k];
  return out;
}

export interface Io {
  env: Record<string, string | undefined>;
  out(s: string): void;
  err(s: string): void;
}

/** Runs the CLI; resolves with the exit code. */
export async function cli(argv: string[], io: Io): Promise<number> {
  if (argv[0] === "install") return (await import("./install.js")).install(argv.slice(1), io);
  if (argv[0] === "translate") return (await import("./translate.js")).translate(argv.slice(1), io);
  if (argv[0] === "gc" && argv.includes("--all"))
    return (await import("./gc-all.js")).gcAll(argv.slice(1), io);
  if (argv[0] === "list") return (await import("./list.js")).list(argv.slice(1), io);
  if (argv[0] === "migrate") return (await import("./migrate.js")).migrateMain(argv.slice(1), io);
  if (argv[0] === "restore") return (await import("./restore.js")).restoreMain(argv.slice(1), io);
  if (argv[0] === "doctor") return (await import("./doctor.js")).doctorMain(argv.slice(1), io);
  if (argv[0] === "inspect") return (await import("./inspect.js")).inspect(argv.slice(1), io);
  if (argv[0] === "resident") return (await import("./resident.js")).residentMain(argv.slice(1), io);
  if (argv[0] === "completion") return (await import("./completion.js")).completion(argv.slice(1), io);
  let json = argv.includes("--json");
  try {
    const p = parseArgv(argv);
    json = p.json;
    if (p.help || p.command === undefined) {
      io.out(HELP[p.command ?? "main"] + "\n");
      return p.help ? 0 : 2;
    }
    const cmd = p.command;
    const needsNetns = cmd === "add" || cmd === "del" || cmd === "check";
    const [network, netnsArg, ...rest] = p.positional;
    if (!network)
      throw usageError(`missing NETWORK (usage: cni-nft ${cmd} NETWORK${needsNetns ? " NETNS" : ""})`);
    if (needsNetns && !netnsArg) throw usageError(`missing NETNS (usage: cni-nft ${cmd} NETWORK NETNS)`);
    if (rest.length || (!needsNetns && netnsArg))
      throw usageError(`too many arguments (try cni-nft ${cmd} --help)`);

    const env = io.env;
    const confDir = p.opts["netconf-path"] ?? env.NETCONFPATH ?? "/etc/cni/net.d";
    const cniPath = (p.opts["cni-path"] ?? env.CNI_PATH ?? "/opt/cni/bin").split(":").filter(Boolean);
    const cacheDir = p.opts["cache-dir"] ?? env.CNI_CACHE_DIR ?? "/var/lib/cni";
    const opts: Options = { cniPath, env: pluginEnv(env) };
    const list = await loadNetwork(confDir, network);

    if (cmd === "gc") {
      const valid = await cachedAttachments(cacheDir, list.name);
      const ran = await gcNetworkList(list, valid, opts);
      io.out(
        json
          ? JSON.stringify({ network: list.name, ran, validAttachments: valid }) + "\n"
          : ran
            ? `gc ${list.name}: done (${valid.length} valid attachments)\n`
            : `gc ${list.name}: skipped (cniVersion ${list.cniVersion} < 1.1.0 or disableGC)\n`,
      );
      return 0;
    }
    if (cmd === "status") {
      const ran = await statusNetworkList(list, opts);
      io.out(
        json
          ? JSON.stringify({ network: list.name, ran, ready: true }) + "\n"
          : ran
            ? `${list.name}: ready\n`
            : `${list.name}: STATUS not supported (cniVersion ${list.cniVersion} < 1.1.0)\n`,
      );
      return 0;
    }

    const netns = netnsPath(netnsArg!);
    const containerId =
      p.opts["container-id"] ??
      env.CNI_CONTAINERID ??
      `cnitool-${createHash("sha512").update(netns).digest("hex").slice(0, 20)}`;
    const ifname = p.opts.ifname ?? env.CNI_IFNAME ?? "eth0";
    validateContainerId(containerId);
    validateIfname(ifname);
    let capabilityArgs: Record<string, unknown> = {};
    if (env.CAP_ARGS) {
      try {
        capabilityArgs = JSON.parse(env.CAP_ARGS) as Record<string, unknown>;
      } catch (e) {
        throw usageError(
          `CAP_ARGS is not valid JSON: ${(e as Error).message}; give an object, e.g. CAP_ARGS='{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}'`,
        );
      }
    }
    const rt: RuntimeConf = {
      containerId,
      netns,
      ifname,
      args: Object.entries(parseCniArgs(env.CNI_ARGS)),
      capabilityArgs,
      cacheDir,
    };
    if (cmd === "add") {
      const result = await addNetworkList(list, rt, opts);
      const version = list.cniVersion || "0.1.0";
      io.out(json ? JSON.stringify(formatResult(result, version), null, 2) + "\n" : summary(result));
    } else if (cmd === "del") {
      await delNetworkList(list, rt, opts);
      io.out(json ? JSON.stringify({ network: list.name, containerId, ifname, deleted: true }) + "\n" : "");
    } else {
      await checkNetworkList(list, rt, opts);
      io.out(
        json
          ? JSON.stringify({ network: list.name, containerId, ifname, ok: true }) + "\n"
          : `${list.name} ${ifname}: ok\n`,
      );
    }
    return 0;
  } catch (e) {
    const err = CniError.from(e);
    if (json) io.out(JSON.stringify(err.toJSON()) + "\n");
    else io.err(`cni-nft: ${err.message}${err.details ? ` (${err.details})` : ""}\n`);
    return 1;
  }
}
