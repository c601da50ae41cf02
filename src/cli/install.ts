/**
 * `cni-nft install`: puts the plugins where runtimes look for them (default /opt/cni/bin) and,
 * with --conflist, a network config into the conf dir (default /etc/cni/net.d). See installer.ts
 * for the atomicity and ownership rules, pod-cidr.ts for the Kubernetes node subnet.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CniError, ErrorCode, configError } from "../cni/errors.js";
import { validateNetworkName } from "../cni/validate.js";
import { apply, plan, readManifest, sourceFiles, type InstallFile, type PlannedFile } from "./installer.js";
import { fillPodCidrs, nodePodCidrs, parsePodCidrs } from "./pod-cidr.js";

export const INSTALL_HELP = `Usage: cni-nft install [options]

Copies the cni-nft plugins into the bin dir atomically (each file written beside its target and
renamed over it) and records them in <bin-dir>/.cni-nft-install.json. A file there that cni-nft
did not install, or that changed since, is never replaced unless --force; then nothing changes.

Options:
  --bin-dir DIR              plugin directory                       (default /opt/cni/bin)
  --conf-dir DIR             network config directory               (default /etc/cni/net.d)
  --conflist FILE            also install FILE (a .conflist) into the conf dir
  --pod-cidr CIDR[,CIDR]     give these subnets to every host-local in the conflist that has no range
  --pod-cidr-from-node NAME  the same, from the Node's spec.podCIDRs (in-cluster service account)
  --source DIR               where the plugins are (default: beside this executable, or dist/compiled)
  --resident                 also install the resident daemon's systemd units (docs/resident.md) into
                             the systemd dir; enable with systemctl enable --now cni-nft-resident.socket
  --systemd-dir DIR          where --resident puts them                (default /etc/systemd/system)
  --force                    replace files cni-nft did not install
  --json                     print what was done as JSON
  -h, --help                 this help

Example:
  ./cni-nft install --conflist 10-podman.conflist`;

interface Io {
  env: Record<string, string | undefined>;
  out(s: string): void;
  err(s: string): void;
}

/** The directory holding the running multi-call binary, or the package's dist/compiled. */
function defaultSource(): string {
  const exe = process.execPath;
  if (basename(exe) === "cni-nft-plugins") return dirname(exe);
  return join(dirname(fileURLToPath(import.meta.url)), "..", "..", "compiled");
}

function readConflist(file: string): Record<string, unknown> {
  let conf: unknown;
  try {
    conf = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw configError(`--conflist ${file}: ${(e as Error).message}`);
  }
  const c = conf as Record<string, unknown>;
  if (!c || typeof c !== "object" || Array.isArray(c)) throw configError(`${file}: not a JSON object`);
  if (typeof c["name"] !== "string") throw configError(`${file}: name must be a string`);
  validateNetworkName(c["name"]);
  if (typeof c["cniVersion"] !== "string") throw configError(`${file}: cniVersion must be a string`);
  const plugins = c["plugins"];
  if (!Array.isArray(plugins) || plugins.length === 0)
    throw configError(`${file}: plugins must be a non-empty list`);
  for (const [i, p] of plugins.entries()) {
    const type = (p as Record<string, unknown> | null)?.["type"];
    if (typeof type !== "string" || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(type))
      throw configError(`${file}: plugins[${i}].type must be a plugin name`);
  }
  return c;
}

export interface InstallReport {
  binDir: string;
  confDir: string;
  source: string;
  files: { path: string; action: PlannedFile["action"] }[];
  podCidrs?: string[];
}

export async function install(argv: string[], io: Io): Promise<number> {
  const json = argv.includes("--json");
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        "bin-dir": { type: "string" },
        "conf-dir": { type: "string" },
        conflist: { type: "string" },
        "pod-cidr": { type: "string" },
        "pod-cidr-from-node": { type: "string" },
        "kube-api": { type: "string" },
        "kube-token-file": { type: "string" },
        source: { type: "string" },
        resident: { type: "boolean" },
        "systemd-dir": { type: "string" },
        force: { type: "boolean" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
    if (values.help) {
      io.out(INSTALL_HELP + "\n");
      return 0;
    }
    if (positionals.length)
      throw new CniError(ErrorCode.InvalidEnvironment, `unexpected argument ${positionals[0]} (try --help)`);
    const binDir = resolve(values["bin-dir"] ?? "/opt/cni/bin");
    const confDir = resolve(values["conf-dir"] ?? "/etc/cni/net.d");
    const source = resolve(values.source ?? defaultSource());
    if (values["pod-cidr"] && values["pod-cidr-from-node"])
      throw configError("--pod-cidr and --pod-cidr-from-node exclude each other");
    if ((values["pod-cidr"] || values["pod-cidr-from-node"]) && !values.conflist)
      throw configError("--pod-cidr needs --conflist (the conflist receives the subnet)");

    // Everything read and checked before the first write.
    const files: InstallFile[] = sourceFiles(source, binDir);
    let podCidrs: string[] | undefined;
    if (values.conflist) {
      const conf = readConflist(values.conflist);
      if (values["pod-cidr"]) podCidrs = parsePodCidrs(values["pod-cidr"].split(","), "--pod-cidr");
      else if (values["pod-cidr-from-node"])
        podCidrs = await nodePodCidrs(values["pod-cidr-from-node"], {
          api: values["kube-api"],
          tokenFile: values["kube-token-file"],
          env: io.env,
        });
      if (podCidrs) fillPodCidrs(conf, podCidrs, values.conflist);
      const name = basename(values.conflist);
      if (!/\.(conflist|conf|json)$/.test(name))
        throw configError(`--conflist ${name}: runtimes read only .conflist, .conf and .json files`);
      files.push({
        path: join(confDir, name),
        data: Buffer.from(JSON.stringify(conf, null, 2) + "\n"),
        mode: 0o644,
      });
    }
    // The resident daemon only when asked: an operator may not want a daemon (docs/resident.md).
    const systemdDir = resolve(values["systemd-dir"] ?? "/etc/systemd/system");
    if (values["systemd-dir"] && !values.resident) throw configError("--systemd-dir needs --resident");
    if (values.resident) {
      const { residentUnits } = await import("./resident-units.js");
      for (const [name, text] of Object.entries(residentUnits(binDir)))
        files.push({ path: join(systemdDir, name), data: Buffer.from(text), mode: 0o644 });
    }
    for (const dir of [binDir, confDir, ...(values.resident ? [systemdDir] : [])])
      if (existsSync(dir) && !statSync(dir).isDirectory())
        throw new CniError(ErrorCode.InvalidEnvironment, `${dir} is not a directory`);
    const manifest = readManifest(binDir);
    const planned = plan(files, manifest, values.force ?? false);
    apply(planned, binDir, manifest);

    const report: InstallReport = {
      binDir,
      confDir,
      source,
      files: planned.map((f) => ({ path: f.path, action: f.action })),
      ...(podCidrs ? { podCidrs } : {}),
    };
    if (json) io.out(JSON.stringify(report, null, 2) + "\n");
    else
      for (const f of report.files)
        if (f.action !== "unchanged") io.out(`${f.action.padEnd(15)} ${f.path}\n`);
    if (values.resident && !json)
      io.out("resident daemon: systemctl daemon-reload && systemctl enable --now cni-nft-resident.socket\n");
    return 0;
  } catch (e) {
    const err =
      e instanceof TypeError && "code" in e && String(e.code).startsWith("ERR_PARSE_ARGS")
        ? new CniError(ErrorCode.InvalidEnvironment, `${e.message} (try --help)`)
        : CniError.from(e);
    if (json) io.out(JSON.stringify(err.toJSON()) + "\n");
    else io.err(`cni-nft install: ${err.message}\n`);
    return 1;
  }
}
