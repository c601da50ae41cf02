/**
 * Whether a framework can really serve an ADD here, for STATUS and `cni-nft doctor`: its tools on
 * PATH, and what the kernel must do for it. nftables: a probe transaction (`nft --check`, which
 * the kernel validates and then aborts, so nothing changes) with the objects the plugins use:
 * nat chains at prerouting and postrouting, masquerade, dnat, fib and ct. iptables: the nat and
 * filter tables can be read.
 */
import { systemRunner } from "../process/index.js";
import { FRAMEWORK_TOOLS, type Framework } from "./choose.js";
import { onPath } from "../iptables/iptables.js";
import { CniError, ErrorCode } from "../cni/index.js";

const NFT_PROBE = (t: string): string =>
  [
    `add table inet ${t}`,
    `add chain inet ${t} c1 { type nat hook prerouting priority -100; }`,
    `add chain inet ${t} c2 { type nat hook postrouting priority 100; }`,
    `add chain inet ${t} c3 { type filter hook forward priority 0; }`,
    `add rule inet ${t} c1 fib daddr type local meta l4proto tcp dnat ip to 127.0.0.1:80`,
    `add rule inet ${t} c2 ct status dnat masquerade`,
    `add rule inet ${t} c3 ct state established,related accept`,
    "",
  ].join("\n");

/** STATUS: code 50 naming every problem unless the framework can serve an ADD. */
export async function requireUsable(f: Framework, what: string): Promise<void> {
  const problems = await frameworkProblems(f);
  if (problems.length)
    throw new CniError(
      ErrorCode.PluginNotAvailable,
      `${what}: ${f} backend not usable: ${problems.join("; ")}`,
    );
}

/** What stops the framework from working, as sentences naming the fix; empty when it is usable. */
export async function frameworkProblems(f: Framework): Promise<string[]> {
  const missing = FRAMEWORK_TOOLS[f].filter((t) => !onPath(t));
  if (missing.length) return [`${missing.join(", ")} not found in PATH: install ${f}`];
  if (f === "nftables") {
    const r = await systemRunner
      .run({ argv: ["nft", "--check", "-f", "-"], stdin: NFT_PROBE(`cni_nft_status_${process.pid}`) })
      .catch((e: Error) => ({ code: 1, stdout: "", stderr: e.message }));
    if (r.code === 0) return [];
    const why = r.stderr.match(/Error: (.*)/)?.[1] ?? r.stderr.trim();
    return [
      `the kernel refuses what the nftables backend needs (nat, masquerade, dnat, fib, ct): ${why}; load nf_tables, nft_nat, nft_fib, nft_ct or use a kernel built with them`,
    ];
  }
  const problems: string[] = [];
  for (const table of ["nat", "filter"]) {
    const r = await systemRunner.run({ argv: ["iptables-save", "-t", table] }).catch((e: Error) => ({
      code: 1,
      stdout: "",
      stderr: e.message,
    }));
    if (r.code !== 0)
      problems.push(
        `iptables-save -t ${table} fails (${r.stderr.trim().split("\n")[0]}): the kernel lacks iptables ${table} support; load its modules or use the nftables backend`,
      );
  }
  return problems;
}
