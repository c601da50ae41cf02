/**
 * `cni-nft restore [--dry-run] [--json] [NETWORK...]`: after `nft flush ruleset`, a restart of
 * nftables.service, `firewall-cmd --reload` or `iptables -F`, re-creates every cached
 * attachment's host state on the backend it belongs on, idempotently, and says what it repaired.
 */
import { readCache } from "../migrate/cache.js";
import { restoreAttachment } from "../migrate/engine.js";
import {
  COMMON_OPTIONS,
  cacheDirOf,
  parseCommand,
  reportLines,
  runCommand,
  withProgress,
  type Io,
} from "./hostcmd.js";

export const RESTORE_HELP = `Usage: cni-nft restore [--dry-run] [--json] [NETWORK...]

Re-creates what a firewall flush or reload removed, for every attachment in the libcni result
cache (CNI_CACHE_DIR/results): masquerade, spoof check, port mappings, firewall accepts, each on
the backend its network uses (the config's, else the network's record, else the host default).
What is whole is left alone: a second run adds nothing. systemd units run it after
nftables.service starts and after firewalld reloads (docs/migration.md).

  --dry-run        print what would be repaired, change nothing
  --json           the report as JSON
  --cache-dir DIR  libcni cache directory (default CNI_CACHE_DIR or /var/lib/cni)
  NETWORK...       only these networks

Exit status 0 only when every component is whole afterwards.

Examples:
  cni-nft restore
  cni-nft restore --dry-run --json podman`;

export async function restoreMain(argv: string[], io: Io): Promise<number> {
  const json = argv.includes("--json");
  return runCommand(io, json, async () => {
    const { values, positionals } = parseCommand(argv, {
      ...COMMON_OPTIONS,
      "dry-run": { type: "boolean", default: false },
    });
    if (values.help) {
      io.out(RESTORE_HELP + "\n");
      return 0;
    }
    const cache = await readCache(cacheDirOf(values["cache-dir"], io.env), positionals);
    const items = cache.attachments;
    const reports = await withProgress("restore", json, items, 4, (i) =>
      restoreAttachment(items[i]!, values["dry-run"]),
    );
    const repaired = reports.flatMap((r) => r.steps).filter((s) => s.action === "repaired").length;
    const ok = reports.every((r) => r.ok) && cache.unreadable.length === 0;
    if (json)
      io.out(
        JSON.stringify({ attachments: reports, unreadable: cache.unreadable, repaired, ok }, null, 2) + "\n",
      );
    else {
      io.out(reportLines(reports.filter((r) => r.steps.some((s) => s.action !== "unchanged"))));
      for (const u of cache.unreadable) io.out(`${u.file}: unreadable cache entry: ${u.why}\n`);
      io.out(`restore: ${reports.length} attachments checked, ${repaired} components repaired\n`);
    }
    return ok ? 0 : 1;
  });
}
