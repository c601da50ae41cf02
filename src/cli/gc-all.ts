/**
 * `cni-nft gc --all [--json]`: GC of every network in the config directory, one after another,
 * each with its cached attachments as the valid ones; progress on a terminal (progress.ts), one
 * JSON event per line with --json, a failure of one network does not stop the others.
 */
import { parseArgs } from "node:util";
import { CniError } from "../cni/index.js";
import { networkNames } from "./completion.js";
import { cachedAttachments, gcNetworkList, loadNetwork } from "./libcni.js";
import { createProgress, type ProgressStream } from "./progress.js";
import { SETTINGS_HELP, SETTINGS_OPTIONS, settingsFrom } from "./settings.js";

export const GC_ALL_HELP = `Usage: cni-nft gc --all [--json]

Runs GC for every network of the config directory with its cached attachments as
cni.dev/valid-attachments (networks below cniVersion 1.1.0 are skipped). A network that fails
does not stop the others; the exit status is 1 when any failed. Progress on a terminal; with
--json one JSON event per line on stderr and the summary on stdout.

Options:
${SETTINGS_HELP}

Example:
  cni-nft gc --all`;

export interface GcAllIo {
  env: Record<string, string | undefined>;
  out(s: string): void;
  err(s: string): void;
  stderr?: ProgressStream;
}

export async function gcAll(argv: string[], io: GcAllIo): Promise<number> {
  try {
    return await run(argv, io);
  } catch (e) {
    io.err(`cni-nft gc: ${CniError.from(e).message}; see 'cni-nft gc --help'\n`);
    return 1;
  }
}

async function run(argv: string[], io: GcAllIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      all: { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
      ...SETTINGS_OPTIONS,
    },
  });
  if (values.help) {
    io.out(GC_ALL_HELP + "\n");
    return 0;
  }
  const s = settingsFrom(values, io.env);
  const names = await networkNames(s.confDir);
  const progress = createProgress({
    label: "gc",
    total: names.length,
    json: values.json === true,
    ...(io.stderr ? { stream: io.stderr } : {}),
  });
  const ran: string[] = [];
  const skipped: string[] = [];
  for (const name of names) {
    progress.begin(name);
    let error: string | undefined;
    try {
      const list = await loadNetwork(s.confDir, name);
      const valid = await cachedAttachments(s.cacheDir, name);
      ((await gcNetworkList(list, valid, { cniPath: s.cniPath, env: s.pluginEnv })) ? ran : skipped).push(
        name,
      );
    } catch (e) {
      error = CniError.from(e).message;
    }
    progress.end(name, error);
  }
  const summary = progress.finish();
  if (values.json) io.out(JSON.stringify({ ran, skipped, failed: summary.failures }) + "\n");
  else {
    if (progress.mode === "none")
      io.out(
        `gc: ${ran.length} networks collected, ${skipped.length} skipped (cniVersion < 1.1.0 or disableGC)\n`,
      );
    for (const f of summary.failures)
      io.err(`cni-nft gc: ${f.item}: ${f.error}; fix it and run 'cni-nft gc ${f.item}'\n`);
  }
  return summary.failures.length ? 1 : 0;
}
