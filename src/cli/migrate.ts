/**
 * `cni-nft migrate --to nftables|iptables [--dry-run] [--json] [NETWORK...]`: moves every cached
 * attachment's host state (masquerade, portmap, firewall) to the target framework while its
 * containers keep running, and records the target per network so later ADDs land there too.
 */
import { CniError, ErrorCode } from "../cni/index.js";
import { networksDir, writeNetworkRecord } from "../framework/index.js";
import { readCache } from "../migrate/cache.js";
import { migrateAttachment } from "../migrate/engine.js";
import {
  COMMON_OPTIONS,
  cacheDirOf,
  parseCommand,
  reportLines,
  runCommand,
  withProgress,
  type Io,
} from "./hostcmd.js";

export const MIGRATE_HELP = `Usage: cni-nft migrate --to nftables|iptables [--dry-run] [--json] [NETWORK...]

Moves the host state of every attachment in the libcni result cache (CNI_CACHE_DIR/results,
written by podman, containerd, CRI-O, buildah and cni-nft) to the target framework, containers
running: per attachment and component, the target is set up, verified, and only then is the
source (upstream 1.1.1's iptables rules, upstream's nftables tables, cni-nft's own) removed.
Conntrack entries are never deleted, so established connections survive. Killed at any point,
every container keeps working and a rerun completes the job; a rerun after success changes
nothing. The target is recorded per network (CNI_NFT_NETWORKS_DIR, default
/var/lib/cni-nft/networks), so containers added later through an unchanged config land there.

  --to FRAMEWORK   nftables or iptables (the way back)
  --dry-run        print the plan per attachment, change nothing
  --json           the report as JSON
  --cache-dir DIR  libcni cache directory (default CNI_CACHE_DIR or /var/lib/cni)
  --parallel N     attachments moved at once (default 4)
  NETWORK...       only these networks (default: every cached network)

Exit status 0 only when every component asked for is on the target.

Examples:
  cni-nft migrate --to nftables --dry-run
  cni-nft migrate --to nftables podman
  cni-nft migrate --to iptables      # the way back`;

export async function migrateMain(argv: string[], io: Io): Promise<number> {
  const json = argv.includes("--json");
  return runCommand(io, json, async () => {
    const { values, positionals } = parseCommand(argv, {
      ...COMMON_OPTIONS,
      to: { type: "string" },
      "dry-run": { type: "boolean", default: false },
      parallel: { type: "string", default: "4" },
    });
    if (values.help) {
      io.out(MIGRATE_HELP + "\n");
      return 0;
    }
    const target = values.to;
    if (target !== "nftables" && target !== "iptables")
      throw new CniError(ErrorCode.InvalidEnvironment, "migrate needs --to nftables or --to iptables");
    const parallel = Number(values.parallel);
    if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64)
      throw new CniError(ErrorCode.InvalidEnvironment, "--parallel must be an integer from 1 to 64");
    const dryRun = values["dry-run"];
    const started = process.hrtime.bigint();
    const cache = await readCache(cacheDirOf(values["cache-dir"], io.env), positionals);
    const networks = [...new Set([...positionals, ...cache.attachments.map((a) => a.network)])].sort();
    // Recorded first: a container added while the move runs goes to the target as well.
    if (!dryRun) for (const n of networks) writeNetworkRecord(n, target, networksDir(io.env));
    const items = cache.attachments;
    const reports = await withProgress("migrate", json, items, parallel, (i) =>
      migrateAttachment(items[i]!, target, dryRun),
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const ok = reports.every((r) => r.ok && r.steps.every((s) => s.action !== "skipped"));
    const summary = {
      target,
      dryRun,
      networks,
      attachments: reports,
      unreadable: cache.unreadable,
      seconds,
      attachmentsPerSecond: reports.length && seconds > 0 ? reports.length / seconds : 0,
      ok: ok && cache.unreadable.length === 0,
    };
    if (json) io.out(JSON.stringify(summary, null, 2) + "\n");
    else {
      io.out(reportLines(reports));
      for (const u of cache.unreadable) io.out(`${u.file}: unreadable cache entry: ${u.why}\n`);
      io.out(
        `${dryRun ? "plan" : "migrated"}: ${reports.length} attachments of ${networks.length} networks to ${target} in ${seconds.toFixed(2)} s${summary.ok ? "" : " (NOT all done: see above)"}\n`,
      );
    }
    return summary.ok ? 0 : 1;
  });
}
