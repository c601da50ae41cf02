/**
 * The full soak: CYCLES (default 1,000) ADD/DEL cycles of bridge -> portmap -> firewall, 8 at a
 * time, per backend. Prints failures, what was left (must be nothing: rules, set and map elements,
 * IP reservations, intent records, links, files of ours under /run, processes, descriptors of this
 * process; the chain starts no daemon) and the ADD latency of the last 100 cycles against the
 * first 100 (issue 15's bar: within 1.2x), in wall time and in CPU time of the plugin processes.
 * Wall time on a shared machine moves with its load, so the bar is judged on CPU time; wall time
 * is also compared with a reference measured in the same cycles (VERSION of each plugin: the same
 * process starts, no host state). Prints what could grow across cycles, sampled every 50
 * (test/helpers/soak-growth.ts: ruleset, links, ifindex, conntrack, files, the kernel's namespaces
 * awaiting clean-up, mounts, processes, slab memory, load). Exits non-zero when any of it fails.
 * Saves everything to bench/results/soak.json. Root; throwaway namespaces. The compiled plugins
 * are faster: CNI_NFT_BIN=dist/compiled.
 *
 * Then (SOAK_SIDE_BY_SIDE cycles per host, default 100) chain ADDs alternate between the soaked
 * host and a fresh one in one pool: the soaked host's ADD latency against a fresh host's, under
 * the same load at the same moment. That is the bar in wall time, on a machine whose load moves.
 *
 * It runs in a /run of its own (bench/lib/private-run.ts; `--shared-run` keeps the machine's):
 * the plugins' lock files and records are then the soak's alone, and what it finds left under
 * /run is its own.
 *
 *   node --import tsx bench/soak.ts [--shared-run] [cycles=1000] [backend=both]
 */
import { loadavg } from "node:os";
import { OUR_BIN, tempDir } from "../test/helpers/cni.js";
import { median, soak, type SoakReport } from "../test/helpers/soak.js";
import type { SoakSample } from "../test/helpers/soak-growth.js";
import { saveResults } from "./lib/results.js";
import { benchArgs, choiceArg, intArg } from "./lib/args.js";
import { privateRun, SHARED_RUN_OPTION, SHARED_RUN_USAGE } from "./lib/private-run.js";

const USAGE = `usage: node --import tsx bench/soak.ts [--shared-run] [cycles] [backend]
  cycles                 ADD/DEL cycles per backend, 8 at a time (default 1000)
  backend                nftables or iptables (default both, one after the other)
${SHARED_RUN_USAGE}
Environment: CNI_NFT_BIN (the plugins; dist/compiled is faster).`;
const { values, positionals } = benchArgs({ usage: USAGE, maxPositionals: 2, options: SHARED_RUN_OPTION });
const CYCLES = intArg(USAGE, "cycles", positionals[0], 1000, 2);
const only = choiceArg(USAGE, "backend", positionals[1], ["nftables", "iptables"]);
const RUN = await privateRun(values["shared-run"]);
console.log(RUN);
const backends = only ? [only] : (["nftables", "iptables"] as const);
const window = Math.min(100, Math.floor(CYCLES / 2));
const SIDE_BY_SIDE = Number(process.env["SOAK_SIDE_BY_SIDE"] ?? 100);

interface Drift {
  first: number;
  last: number;
  ratio: number;
}
function drift(xs: number[]): Drift {
  const first = median(xs.slice(0, window));
  const last = median(xs.slice(-window));
  return { first, last, ratio: last / first };
}
function line(what: string, d: Drift): string {
  return `  ${what}, median of the first ${window}: ${d.first.toFixed(1)} ms, last ${window}: ${d.last.toFixed(1)} ms (${d.ratio.toFixed(2)}x)`;
}

const SAMPLE_COLUMNS: (keyof SoakSample)[] = [
  "cycle",
  "load1",
  "kernelNetns",
  "namedNetns",
  "hostLinks",
  "maxIfindex",
  "conntrack",
  "rulesetLines",
  "maxRuleHandle",
  "runFiles",
  "dataDirFiles",
  "mounts",
  "processes",
  "slabKb",
];
function sampleTable(samples: SoakSample[]): string {
  const rows = [SAMPLE_COLUMNS.map(String), ...samples.map((s) => SAMPLE_COLUMNS.map((c) => String(s[c])))];
  const widths = SAMPLE_COLUMNS.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => "    " + r.map((v, i) => v.padStart(widths[i]!)).join(" ")).join("\n");
}

let bad = 0;
const saved: Record<string, unknown> = {};
for (const backend of backends) {
  const dir = tempDir(`soak-${backend}`);
  const loadBefore = loadavg()[0]!;
  try {
    const r: SoakReport = await soak({
      backend,
      dataDir: dir.path,
      cycles: CYCLES,
      width: 8,
      bin: OUR_BIN,
      sideBySide: SIDE_BY_SIDE,
    });
    console.log(
      `${backend}: ${CYCLES} cycles, ${r.failures.length} failures (load average ${loadBefore.toFixed(1)} -> ${loadavg()[0]!.toFixed(1)})`,
    );
    for (const f of r.failures.slice(0, 10)) console.log(`  ${f.slice(0, 200)}`);
    console.log(`  left on the host: ${r.leftover === "" ? "nothing" : `\n${r.leftover}`}`);
    console.log(`  processes left (plugins anywhere, anything in the host namespace): ${r.processes.length}`);
    for (const p of r.processes.slice(0, 5)) console.log(`    ${p}`);
    console.log(`  new files of ours under /run: ${r.runFiles.length ? r.runFiles.join(", ") : "none"}`);
    if (r.otherRunFiles.length)
      console.log(
        `  new lock files no plugin of the chain makes (another build's): ${r.otherRunFiles.join(", ")}`,
      );
    console.log(
      `  open descriptors of this process: ${r.fds.before} after the warm-up, ${r.fds.after} at the end`,
    );
    const figures = {
      addWall: drift(r.addMs),
      addCpu: drift(r.addCpuMs),
      ...Object.fromEntries(Object.entries(r.addCpuByPlugin).map(([p, xs]) => [`add ${p} cpu`, drift(xs)])),
      delWall: drift(r.delMs),
      delCpu: drift(r.delCpuMs),
      refWall: drift(r.refMs),
      refCpu: drift(r.refCpuMs),
      // What ADD costs beyond starting its three processes: the part our state could make grow.
      addCpuBeyondRef: drift(r.addCpuMs.map((x, i) => x - r.refCpuMs[i]!)),
    };
    console.log(line("chain ADD wall", figures.addWall));
    console.log(line("chain ADD CPU (plugin processes)", figures.addCpu));
    for (const p of Object.keys(r.addCpuByPlugin))
      console.log(line(`  ${p} ADD CPU`, figures[`add ${p} cpu` as "addCpu"]));
    console.log(line("chain DEL wall", figures.delWall));
    console.log(line("chain DEL CPU", figures.delCpu));
    console.log(line("reference (VERSION of each plugin) wall", figures.refWall));
    console.log(line("reference CPU", figures.refCpu));
    // The machine's load moves both; what leaked state would add moves ADD alone.
    const wallAgainstRef = figures.addWall.ratio / figures.refWall.ratio;
    console.log(`  ADD wall drift against the reference: ${wallAgainstRef.toFixed(2)}x`);
    console.log(line("chain ADD CPU beyond the reference's", figures.addCpuBeyondRef));
    console.log(
      `  ADD CPU drift: ${figures.addCpu.ratio.toFixed(2)}x (bar 1.2x); against the reference's CPU: ${(figures.addCpu.ratio / figures.refCpu.ratio).toFixed(2)}x`,
    );
    const side = r.sideBySide && {
      wall: { soaked: median(r.sideBySide.soakedMs), fresh: median(r.sideBySide.freshMs) },
      cpu: { soaked: median(r.sideBySide.soakedCpuMs), fresh: median(r.sideBySide.freshCpuMs) },
    };
    if (side) {
      const l = (what: string, x: { soaked: number; fresh: number }): string =>
        `  ${what}, side by side (${SIDE_BY_SIDE} each, alternated): soaked host ${x.soaked.toFixed(1)} ms, fresh host ${x.fresh.toFixed(1)} ms (${(x.soaked / x.fresh).toFixed(2)}x, bar 1.2x)`;
      console.log(l("chain ADD wall", side.wall));
      console.log(l("chain ADD CPU", side.cpu));
    }
    console.log(`  what could grow, every 50 cycles:\n${sampleTable(r.samples)}`);
    saved[backend] = {
      cycles: CYCLES,
      failures: r.failures.length,
      leftover: r.leftover,
      loadBefore,
      loadAfter: loadavg()[0],
      figures,
      wallAgainstRef,
      ...(side ? { sideBySide: side } : {}),
      samples: r.samples,
    };
    if (r.failures.length || r.leftover !== "" || r.processes.length || r.runFiles.length) bad++;
    if (r.fds.after > r.fds.before || figures.addCpu.ratio > 1.2) bad++;
    if (side && side.wall.soaked / side.wall.fresh > 1.2) bad++;
  } finally {
    dir.remove();
  }
}
saveResults(
  "soak",
  { cycles: CYCLES, width: 8, window, bin: OUR_BIN, privateRun: !values["shared-run"] },
  saved,
);
process.exitCode = bad ? 1 : 0;
