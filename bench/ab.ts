/**
 * Two builds of the plugins against each other on the same host, interleaved (A, B, A, B, ...),
 * so both see the same load: portmap ADD and DEL (one mapping) and firewall ADD and DEL of one
 * container, nftables backends, with N other portmap containers in place (filled through build
 * A's plugin, bench/lib/fill.ts). Per verb: median wall time and median CPU time of the plugin
 * process (bash `times`, test/helpers/soak-growth.ts), and B against A. What a change to the
 * ADD path costs or saves without trusting wall time on a loaded machine.
 *
 * In a /run of its own (bench/lib/private-run.ts; `--shared-run` keeps the machine's), so no
 * call waits for a lock file another suite or bench holds.
 *
 *   node --import tsx bench/ab.ts --a OLD_DIR --b NEW_DIR [--n 0,2000] [--runs 25] [--shared-run]
 */
import { loadavg } from "node:os";
import { Netns } from "../test/helpers/netns.js";
import { timedPluginCall } from "../test/helpers/soak-growth.js";
import { median } from "../test/helpers/soak.js";
import { removeNamespaces, removeNamespacesOnSignals } from "./lib/namespaces.js";
import { benchArgs, intArg, intListArg, usageError } from "./lib/args.js";
import { privateRun, SHARED_RUN_OPTION, SHARED_RUN_USAGE } from "./lib/private-run.js";

const USAGE = `usage: node --import tsx bench/ab.ts --a OLD_DIR --b NEW_DIR [--n 0,2000] [--runs 25] [--shared-run]
  --a DIR, --b DIR       the two builds' plugin directories (a dist/compiled each)
  --n LIST               other portmap containers in place, per figure (default 0,2000)
  --runs N               runs per verb and build (default 25)
${SHARED_RUN_USAGE}`;
const { values } = benchArgs({
  usage: USAGE,
  options: {
    a: { type: "string" },
    b: { type: "string" },
    n: { type: "string", default: "0,2000" },
    runs: { type: "string", default: "25" },
    ...SHARED_RUN_OPTION,
  },
});
if (!values.a || !values.b) usageError(USAGE, "give --a DIR and --b DIR (plugin directories)");
const builds = { A: values.a, B: values.b };
const NS = intListArg(USAGE, "--n", values.n);
const RUNS = intArg(USAGE, "--runs", values.runs, 25, 1);
const RUN = await privateRun(values["shared-run"]);
const PREFIX = `cnt-${process.pid}-`;
removeNamespacesOnSignals(PREFIX);

const prevResult = {
  cniVersion: "1.0.0",
  interfaces: [{ name: "eth0", sandbox: "/var/run/netns/probe" }],
  ips: [{ address: "10.98.0.2/16", interface: 0 }],
};
const CONFS: Record<string, object> = {
  portmap: {
    cniVersion: "1.0.0",
    name: "benchnet",
    type: "portmap",
    backend: "nftables",
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] },
    prevResult,
  },
  firewall: { cniVersion: "1.0.0", name: "benchnet", type: "firewall", backend: "nftables", prevResult },
};

async function call(
  host: Netns,
  bin: string,
  plugin: string,
  verb: string,
): Promise<{ ms: number; cpu: number }> {
  const env = {
    PATH: process.env["PATH"],
    CNI_COMMAND: verb,
    CNI_CONTAINERID: "probe",
    CNI_NETNS: "/var/run/netns/probe",
    CNI_IFNAME: "eth0",
    CNI_PATH: bin,
  };
  return timedPluginCall(host, `${bin}/${plugin}`, CONFS[plugin], env);
}

console.log(
  `A: ${builds.A}\nB: ${builds.B}\n${RUN}\n${RUNS} interleaved runs per figure; load average ${loadavg()[0]!.toFixed(1)}`,
);
try {
  for (const n of NS) {
    const host = await Netns.create(`ab${n}`);
    if (n > 0) {
      const argv = [
        process.execPath,
        "--import",
        "tsx",
        "bench/lib/fill.ts",
        builds.A,
        "0",
        String(n),
        "4",
        "nftables",
      ];
      const r = await host.run(argv, { timeoutMs: 3_600_000 });
      if (r.code !== 0) throw new Error(`filling ${n}: ${r.stderr}`);
    }
    const samples = new Map<string, { ms: number[]; cpu: number[] }>();
    const push = (key: string, s: { ms: number; cpu: number }): void => {
      const m = samples.get(key) ?? { ms: [], cpu: [] };
      m.ms.push(s.ms);
      m.cpu.push(s.cpu);
      samples.set(key, m);
    };
    for (let i = 0; i < RUNS + 1; i++)
      for (const [label, bin] of Object.entries(builds))
        for (const plugin of ["portmap", "firewall"]) {
          const add = await call(host, bin, plugin, "ADD");
          const del = await call(host, bin, plugin, "DEL");
          // The first round warms both builds up (page cache, the table's first ADD).
          if (i === 0) continue;
          push(`${plugin} ADD ${label}`, add);
          push(`${plugin} DEL ${label}`, del);
        }
    console.log(`\nN = ${n} other portmap containers (load average ${loadavg()[0]!.toFixed(1)})`);
    for (const plugin of ["portmap", "firewall"])
      for (const verb of ["ADD", "DEL"]) {
        const a = samples.get(`${plugin} ${verb} A`)!;
        const b = samples.get(`${plugin} ${verb} B`)!;
        const [aw, bw, ac, bc] = [median(a.ms), median(b.ms), median(a.cpu), median(b.cpu)];
        console.log(
          `  ${`${plugin} ${verb}`.padEnd(13)} wall A ${aw.toFixed(1)} ms, B ${bw.toFixed(1)} ms (${(bw / aw).toFixed(2)}x); CPU A ${ac.toFixed(0)} ms, B ${bc.toFixed(0)} ms (${(bc / ac).toFixed(2)}x)`,
        );
      }
    await host.destroy();
  }
} finally {
  removeNamespaces(PREFIX);
}
