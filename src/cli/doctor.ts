/** `cni-nft doctor [--json]`: diagnoses this host for an operator; each finding says what to do. */
import { diagnose } from "../doctor/findings.js";
import { readCache } from "../migrate/cache.js";
import { COMMON_OPTIONS, cacheDirOf, parseCommand, runCommand, type Io } from "./hostcmd.js";

export const DOCTOR_HELP = `Usage: cni-nft doctor [--json]

Looks at this host (or the network namespace it runs in) and reports what will break
containers, each finding with what to do: forward policies that drop container traffic (an
nftables base chain with policy drop, iptables FORWARD DROP), iptables-legacy rules beside
nftables, kernel features the backends need (nat, masquerade, dnat, fib, ct), ip_forward off,
leftovers no cached attachment owns (what GC would remove), the firewall's hostForward accepts
left in the host firewall's chains when no network's config asks for them any more (with the
command that deletes each), networks whose config names a backend this host cannot run.
Changes nothing. Exit status 0 when nothing was found.

  --json             the findings as JSON
  --cache-dir DIR    libcni cache directory (default CNI_CACHE_DIR or /var/lib/cni)
  --netconf-path DIR network configs (default NETCONFPATH or /etc/cni/net.d)

Examples:
  cni-nft doctor
  cni-nft doctor --json | jq '.findings[]'`;

export async function doctorMain(argv: string[], io: Io): Promise<number> {
  const json = argv.includes("--json");
  return runCommand(io, json, async () => {
    const { values } = parseCommand(argv, COMMON_OPTIONS);
    if (values.help) {
      io.out(DOCTOR_HELP + "\n");
      return 0;
    }
    const cache = await readCache(cacheDirOf(values["cache-dir"], io.env));
    const confDir = values["netconf-path"] ?? io.env["NETCONFPATH"] ?? "/etc/cni/net.d";
    const findings = await diagnose({ confDir, cached: cache.attachments });
    if (json) io.out(JSON.stringify({ findings, ok: findings.length === 0 }, null, 2) + "\n");
    else if (findings.length === 0) io.out("doctor: nothing found\n");
    else for (const f of findings) io.out(`${f.kind}: ${f.message}\n  fix: ${f.fix}\n`);
    return findings.length === 0 ? 0 : 1;
  });
}
