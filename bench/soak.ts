/**
 * The full soak: CYCLES (default 1,000) ADD/DEL cycles of bridge -> portmap -> firewall, 8 at a
 * time, per backend. Prints failures, what was left (must be nothing: rules, set and map elements,
 * IP reservations, intent records, links, files of ours under /run, processes, descriptors of this
 * process; the chain starts no daemon) and the ADD latency of the last 100 cycles against the
 * first 100 (issue 15's bar: within 1.2x), against a reference measured in the same cycles (VERSION
 * of each plugin: the same process starts, no host state), so a machine whose load changes during
 * the run does not pass for drift. Exits non-zero when any of it fails. Root; throwaway
 * namespaces. The compiled plugins are faster: CNI_NFT_BIN=dist/compiled.
 *
 *   node --import tsx bench/soak.ts [cycles=1000] [backend=both]
 */
import { OUR_BIN, tempDir } from "../test/helpers/cni.js";
import { median, soak } from "../test/helpers/soak.js";

const CYCLES = Number(process.argv[2] ?? 1000);
const backends = process.argv[3]
  ? [process.argv[3] as "nftables" | "iptables"]
  : (["nftables", "iptables"] as const);
let bad = 0;
for (const backend of backends) {
  const dir = tempDir(`soak-${backend}`);
  try {
    const r = await soak({ backend, dataDir: dir.path, cycles: CYCLES, width: 8, bin: OUR_BIN });
    const window = Math.min(100, Math.floor(CYCLES / 2));
    const first = median(r.addMs.slice(0, window));
    const last = median(r.addMs.slice(-window));
    console.log(`${backend}: ${CYCLES} cycles, ${r.failures.length} failures`);
    for (const f of r.failures.slice(0, 10)) console.log(`  ${f.slice(0, 200)}`);
    console.log(`  left on the host: ${r.leftover === "" ? "nothing" : `\n${r.leftover}`}`);
    console.log(`  processes left (plugins anywhere, anything in the host namespace): ${r.processes.length}`);
    for (const p of r.processes.slice(0, 5)) console.log(`    ${p}`);
    console.log(`  new files of ours under /run: ${r.runFiles.length ? r.runFiles.join(", ") : "none"}`);
    console.log(
      `  open descriptors of this process: ${r.fds.before} after the warm-up, ${r.fds.after} at the end`,
    );
    const refFirst = median(r.refMs.slice(0, window));
    const refLast = median(r.refMs.slice(-window));
    // The machine's load moves both; what leaked state would add moves ADD alone.
    const ratio = last / first / (refLast / refFirst);
    console.log(
      `  chain ADD median, first ${window}: ${first.toFixed(0)} ms, last ${window}: ${last.toFixed(0)} ms (${(last / first).toFixed(2)}x)`,
    );
    console.log(
      `  reference (VERSION of each plugin), first ${window}: ${refFirst.toFixed(0)} ms, last ${window}: ${refLast.toFixed(0)} ms (${(refLast / refFirst).toFixed(2)}x)`,
    );
    console.log(`  ADD drift against the reference: ${ratio.toFixed(2)}x (bar 1.2x)`);
    if (r.failures.length || r.leftover !== "" || r.processes.length || r.runFiles.length) bad++;
    if (r.fds.after > r.fds.before || ratio > 1.2) bad++;
  } finally {
    dir.remove();
  }
}
process.exitCode = bad ? 1 : 0;
