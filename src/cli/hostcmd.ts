/**
 * What `cni-nft migrate`, `restore` and `doctor` share: their options (node:util parseArgs), the
 * cache directory from the same environment as the other verbs, and the per-attachment report.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { CniError, ErrorCode } from "../cni/index.js";
import { inBatches, type AttachmentReport } from "../migrate/engine.js";
import { createProgress } from "./progress.js";

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
