/**
 * What `cni-nft migrate`, `restore` and `doctor` share: their options (node:util parseArgs), the
 * cache directory from the same environment as the other verbs, and the per-attachment report.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { CniError, ErrorCode } from "../cni/index.js";
import { inBatches, type AttachmentReport } from "../migrate/engine.js";
import { createProgress } from "./progress.js";
import { SETTINGS_OPTIONS } from "./settings.js";
import { painter, useColour, type OutStream, type Paint } from "./table.js";

export interface Io {
  env: Record<string, string | undefined>;
  out(s: string): void;
  err(s: string): void;
}

/**
 * Runs `work` over the cached attachments, a few at once, with the shared progress reporter
 * (a line on a terminal, JSON events with --json, nothing in a pipe) naming each attachment.
 */
export async function withProgress<R extends { ok: boolean }>(
  label: string,
  json: boolean,
  items: readonly { network: string; containerId: string; ifname: string }[],
  parallel: number,
  work: (i: number) => Promise<R>,
): Promise<R[]> {
  const progress = createProgress({ label, total: items.length, json });
  const out = await inBatches(
    items.map((_, i) => i),
    parallel,
    async (i) => {
      const a = items[i]!;
      const item = `${a.network} ${a.containerId.slice(0, 12)} ${a.ifname}`;
      progress.begin(item);
      const r = await work(i);
      progress.end(item, r.ok ? undefined : "not done");
      return r;
    },
  );
  progress.finish();
  return out;
}

export const COMMON_OPTIONS = {
  json: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
  "cache-dir": { type: "string" },
  "netconf-path": { type: "string" },
} as const satisfies ParseArgsConfig["options"];

export function parseCommand<O extends NonNullable<ParseArgsConfig["options"]>>(
  argv: string[],
  options: O,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new CniError(ErrorCode.InvalidEnvironment, `${(e as Error).message} (try --help)`);
  }
}

export function cacheDirOf(opt: string | undefined, env: Io["env"]): string {
  return opt ?? env["CNI_CACHE_DIR"] ?? "/var/lib/cni";
}

/** One line per component: `net/id/if  portmap: moved iptables -> nftables`. */
export function reportLines(reports: readonly AttachmentReport[]): string {
  const lines: string[] = [];
  for (const r of reports) {
    const who = `${r.network} ${r.containerId.slice(0, 12)} ${r.ifname}`;
    if (r.steps.length === 0) lines.push(`${who}: nothing on the host firewall`);
    for (const s of r.steps) {
      const path = s.from?.length ? `${s.from.join("+")} -> ${s.to ?? "?"}` : (s.to ?? "");
      lines.push(
        `${who}: ${s.component} ${s.action}${path ? ` (${path})` : ""}${s.detail ? `: ${s.detail}` : ""}`,
      );
    }
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}

/** Runs a command body; errors become the CLI's usual output and exit status 1. */
export async function runCommand(io: Io, json: boolean, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    const err = CniError.from(e);
    if (json) io.out(JSON.stringify(err.toJSON()) + "\n");
    else io.err(`cni-nft: ${err.message}${err.details ? ` (${err.details})` : ""}\n`);
    return 1;
  }
}

/** The options every host view (`list`, `inspect`) takes. */
export const VIEW_OPTIONS = {
  json: { type: "boolean" },
  "no-color": { type: "boolean" },
  help: { type: "boolean", short: "h" },
  ...SETTINGS_OPTIONS,
} as const satisfies ParseArgsConfig["options"];

/** Colours on a terminal that takes them, unless --no-color. */
export function viewPainter(noColor: boolean | undefined, io: Io & { stdout?: OutStream }): Paint {
  return painter(!noColor && useColour(io.stdout ?? process.stdout, io.env));
}

/**
 * The frame of a host view (`list`, `inspect`): `body` runs with whether --json was asked; an
 * error becomes `cni-nft VERB: message` on stderr (a bad option with a pointer to --help), or
 * `{"code", "msg"}` on stdout with --json; exit status 1.
 */
export async function runHostView(
  verb: string,
  argv: readonly string[],
  io: Io,
  body: (json: boolean) => Promise<number>,
): Promise<number> {
  const json = argv.includes("--json");
  try {
    return await body(json);
  } catch (e) {
    const err = CniError.from(e);
    const message = /Unknown option|Unexpected argument/.test(err.message)
      ? `${err.message}; see 'cni-nft ${verb} --help'`
      : err.message;
    if (json) io.out(JSON.stringify({ code: err.code, msg: message }) + "\n");
    else io.err(`cni-nft ${verb}: ${message}\n`);
    return 1;
  }
}
