/**
 * `cni-nft translate [--apply] [--json] [--owner NAME] [FILE]`: iptables-save (or ip6tables-save)
 * output, optionally preceded by the ipset save of its sets, into an nft script for the owner's
 * own table with native sets, and a report of what could not be translated. With --apply the
 * result is loaded atomically into that table, and nothing at all when anything was refused.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { NFTables } from "../nftables/index.js";
import {
  createNetfilterManager,
  isNetfilterError,
  loadSaveFile,
  parseSaveFile,
  translateSaveFile,
  type Refusal,
} from "../netfilter/index.js";

export const TRANSLATE_HELP = `Usage: cni-nft translate [--apply] [--json] [--owner NAME] [FILE]

Reads iptables-save or ip6tables-save output (recognised by its header line) from FILE or stdin,
optionally preceded by the 'ipset save' output of the sets its rules use, and prints an nft script
for the table 'ip NAME' (or 'ip6 NAME') with the sets as native nft sets. What cannot be
translated is reported on stderr, each refused rule by its line and text with the reason and the
nft way where there is one; the exit status is 1 when anything was refused.

Options:
  --owner NAME   the table the rules go to (default: translated)
  --apply        load the result into that table atomically (partial: only what differs);
                 nothing is applied when anything was refused. iptables' own tables and other
                 owners' tables are never touched.
  --json         print {family, owner, script, refused, applied} as JSON
  -h, --help     this help

Example:
  iptables-save -t filter | cni-nft translate --owner myfw`;

interface Io {
  out(s: string): void;
  err(s: string): void;
  /** stdin, read only when no FILE is given. */
  stdin?: () => string;
}

function describe(r: Refusal): string {
  const why = `${r.part ? `${r.part}: ` : ""}${r.reason}${r.nftWay ? `; in nft: ${r.nftWay}` : ""}`;
  return `line ${r.line}: ${r.text}\n    ${why}\n`;
}

export async function translate(argv: string[], io: Io): Promise<number> {
  let json = argv.includes("--json");
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        apply: { type: "boolean" },
        json: { type: "boolean" },
        owner: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
    json = values.json === true;
    if (values.help) {
      io.out(TRANSLATE_HELP + "\n");
      return 0;
    }
    if (positionals.length > 1) throw new Error("too many arguments (one FILE, or stdin)");
    const owner = values.owner ?? "translated";
    const text =
      positionals[0] !== undefined
        ? readFileSync(positionals[0], "utf8")
        : (io.stdin ?? (() => readFileSync(0, "utf8")))();
    const result = await translateSaveFile(text, owner);
    let applied = false;
    if (values.apply && result.refused.length === 0) {
      const file = parseSaveFile(text);
      const nft = new NFTables({ family: file.family === 4 ? "ip" : "ip6", table: owner });
      const m = createNetfilterManager({ owner, backend: "nftables", families: [file.family], nft });
      loadSaveFile(m, file);
      await m.apply();
      applied = true;
    }
    if (json) io.out(JSON.stringify({ ...result, applied }, null, 2) + "\n");
    else {
      if (!values.apply) io.out(result.script);
      for (const r of result.refused) io.err(`cni-nft translate: refused ${describe(r)}`);
      const table = `${result.family === 4 ? "ip" : "ip6"} ${owner}`;
      if (values.apply)
        io.err(
          applied
            ? `cni-nft translate: applied to table ${table}: ${result.rules} rules, ${result.sets} sets\n`
            : `cni-nft translate: nothing applied: ${result.refused.length} refused\n`,
        );
      else if (result.refused.length)
        io.err(`cni-nft translate: ${result.refused.length} refused, ${result.rules} rules translated\n`);
    }
    return result.refused.length ? 1 : 0;
  } catch (e) {
    const message = (e as Error).message;
    if (json)
      io.out(JSON.stringify({ error: message, code: isNetfilterError(e) ? e.code : "EINVAL" }) + "\n");
    else io.err(`cni-nft translate: ${message}\n`);
    return isNetfilterError(e) && e.code !== "EAPPLY" ? 2 : 1;
  }
}
