/**
 * podman's chain (bridge -> portmap -> firewall -> tuning, VERSION before each plugin's ADD and
 * DEL, prevResult threaded as libcni does) with cni-nft's plugins against upstream's Go plugins,
 * in one run on one machine: upstream 1.1.1 (/usr/lib/cni, iptables), cni-nft on its iptables
 * and on its nftables backends, and upstream's current plugins with their nftables backends when
 * their directory is given (`--upstream-current DIR`; nothing of upstream is in this repository).
 *
 * Every flavour gets a host of its own (a throwaway network namespace), and the driver runs
 * inside it, so plugins are started the way a runtime starts them: no `ip netns exec` per call.
 * The chain is timed on an empty host and again with each population of containers already
 * attached through the same chain (each with its own port mapping); populations are filled
 * through the plugins, several chains at a time (`--parallel`), and removed the same way.
 * Printed per flavour: medians, ratios against upstream 1.1.1 from the same run, the processes
 * one chain ADD and one chain DEL start (strace; sh fronts, VERSION calls and plugins included)
 * and the peak memory of one bridge ADD process (GNU time).
 *
 *   node --import tsx bench/chain.ts [--runs 15] [--populations 0,200,2000] [--parallel 4]
 *                                    [--upstream-current /tmp/upstream-cni/bin] [--only LABEL,...]
 *                                    [--baseline OTHER/dist/compiled]
 *
 * --baseline adds the nftables resident flavour of another build of the compiled plugins (a copy
 * of its dist/compiled is enough), "cni-nft nftables, resident, baseline": a change to the
 * client's path against the build before it, in the same run.
 *   node --import tsx bench/chain.ts [runs] [population]          (the old form: 0 and that population)
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchArgs, intArg, intListArg } from "./lib/args.js";
import { saveResults } from "./lib/results.js";
import { removeNamespaces, removeNamespacesOnSignals } from "./lib/namespaces.js";
import { cpuMsOf, describeCounts, startBenchResident, type BenchResident } from "./lib/resident.js";
import { median, processesOf, runChain, runChainAsync, type Conf, type Flavour } from "./lib/chain-run.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OURS = join(ROOT, "dist", existsSync(join(ROOT, "dist/compiled/cni-nft-plugins")) ? "compiled" : "bin");
const UPSTREAM = "/usr/lib/cni";
/** Every namespace of this run starts with it (the child inside a host gets it from the parent): the parent removes whatever a child left. */
const PREFIX_ENV = "CNI_NFT_BENCH_PREFIX";
const PREFIX = process.env[PREFIX_ENV] ?? `cnb${process.pid}`;

interface Params {
  runs: number;
  populations: number[];
  parallel: number;
}

function chainFor(
  masq: "iptables" | "nftables" | undefined,
  firewall: "" | "nftables",
  name: string,
  store: string,
): Conf[] {
  const b = masq ? { ipMasqBackend: masq } : {};
  const p = masq ? { backend: masq } : {};
  return [
    {
      type: "bridge",
      bridge: `br${name.slice(0, 8)}`,
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ...b,
      ipam: {
        type: "host-local",
        dataDir: store,
        ranges: [[{ subnet: "10.123.0.0/16" }]],
        routes: [{ dst: "0.0.0.0/0" }],
      },
    },
    {
      type: "portmap",
      capabilities: { portMappings: true },
      runtimeConfig: { portMappings: [{ hostPort: 18081, containerPort: 80, protocol: "tcp" }] },
      ...p,
    },
    { type: "firewall", backend: firewall },
    { type: "tuning" },
  ].map((c) => ({ cniVersion: "0.4.0", name, ...c }));
}

function flavours(upstreamCurrent: string | undefined, store: string, baseline?: string): Flavour[] {
  const all: Flavour[] = [
    {
      label: "upstream 1.1.1 (Go, iptables)",
      bin: UPSTREAM,
      chain: chainFor(undefined, "", "upstream", store),
    },
    { label: "cni-nft, iptables backends", bin: OURS, chain: chainFor("iptables", "", "oursipt", store) },
    {
      label: "cni-nft, nftables backends",
      bin: OURS,
      chain: chainFor("nftables", "nftables", "oursnft", store),
    },
    // The same plugins as thin clients of a warm resident daemon (docs/resident.md).
    ...(OURS.endsWith("compiled")
      ? [
          {
            label: "cni-nft nftables, resident",
            bin: OURS,
            chain: chainFor("nftables", "nftables", "oursres", store),
            resident: true,
          },
          ...(baseline
            ? [
                {
                  label: "cni-nft nftables, resident, baseline",
                  bin: baseline,
                  chain: chainFor("nftables", "nftables", "oursresb", store),
                  resident: true,
                },
              ]
            : []),
          {
            label: "cni-nft iptables, resident",
            bin: OURS,
            chain: chainFor("iptables", "", "oursresi", store),
            resident: true,
          },
        ]
      : []),
    // The same plugins with libnftables hidden: nft as a command, the compiled plugins' fallback.
    {
      label: "cni-nft, nftables, nft command",
      bin: OURS,
      chain: chainFor("nftables", "nftables", "oursnftc", store),
      env: { CNI_NFT_LIBNFTABLES: "off" },
    },
  ];
  // Upstream's firewall has no nftables backend: its own default (iptables) there.
  if (upstreamCurrent)
    all.push({
      label: "upstream current (Go, nftables)",
      bin: upstreamCurrent,
      chain: chainFor("nftables", "", "upcur", store),
    });
  return all;
}

const sh = (argv: string[]): string => execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });

/** `ip -batch` of netns add/del lines: one process for many namespaces. */
function netnsBatch(verb: "add" | "del", names: readonly string[]): void {
  if (names.length === 0) return;
  spawnSync("ip", ["-force", "-batch", "-"], { input: names.map((n) => `netns ${verb} ${n}\n`).join("") });
}

// ---------------------------------------------------------------------------------------------
// Inside one flavour's host namespace.

interface Attached {
  ns: string;
  id: string;
  flavour: Flavour;
  result: unknown;
}

/** Containers per network of a population: a Linux bridge takes at most 1,024 ports. */
const PER_BRIDGE = 1000;

/**
 * The chain of the population's i-th container: its own host port, and from the 1,000th on a
 * network (bridge, subnet) of its own per thousand. Host state (rules, sets, maps) is shared by
 * every network, so the timed chain still sees all of it.
 */
function populationMember(f: Flavour, i: number): Flavour {
  const k = Math.floor(i / PER_BRIDGE);
  const chain = f.chain.map((c) => {
    const net = k === 0 ? c : { ...c, name: `${String(c["name"])}${k}` };
    if (c["type"] === "portmap")
      return {
        ...net,
        runtimeConfig: { portMappings: [{ hostPort: 20000 + i, containerPort: 80, protocol: "tcp" }] },
      };
    if (c["type"] === "bridge" && k > 0) {
      const ipam = c["ipam"] as Conf;
      return {
        ...net,
        bridge: `${String(c["bridge"]).slice(0, 12)}${k}`,
        ipam: { ...ipam, ranges: [[{ subnet: `10.${123 + k}.0.0/16` }]] },
      };
    }
    return net;
  });
  return { ...f, chain };
}

/** Runs `jobs` at most `parallel` at a time (each job one chain, run by a child process). */
async function pool<T>(jobs: Array<() => Promise<T>>, parallel: number): Promise<T[]> {
  const out: T[] = new Array<T>(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  return out;
}

async function fill(
  f: Flavour,
  from: number,
  to: number,
  parallel: number,
  attached: Attached[],
): Promise<void> {
  const names = Array.from({ length: to - from }, (_, k) => `${PREFIX}p${from + k}`);
  netnsBatch("add", names);
  const jobs = names.map((ns, k) => async () => {
    const i = from + k;
    const flavour = populationMember(f, i);
    const id = `pop${i}`;
    const result = await runChainAsync(flavour, "ADD", id, `/var/run/netns/${ns}`);
    attached.push({ ns, id, flavour, result });
  });
  await pool(jobs, parallel);
}

async function empty(attached: Attached[], parallel: number): Promise<void> {
  await pool(
    attached.map((a) => () => runChainAsync(a.flavour, "DEL", a.id, `/var/run/netns/${a.ns}`, a.result)),
    parallel,
  );
  netnsBatch(
    "del",
    attached.map((a) => a.ns),
  );
  attached.length = 0;
}

/** The flavour's resident daemon, when it has one (started by `inside`). */
let daemon: BenchResident | undefined;
/**
 * CPU ms so far of every process a chain runs: the plugin processes (and what they start) are
 * this driver's waited-for children; a resident daemon's own time and its children's are added.
 */
function cpuMs(): number {
  return cpuMsOf("self").children + (daemon ? daemon.cpuMs() : 0);
}

function timeChain(
  f: Flavour,
  length: number,
  runs: number,
): { add: number; del: number; addCpu: number; delCpu: number } {
  const sub: Flavour = { ...f, chain: f.chain.slice(0, length) };
  const adds: number[] = [];
  const dels: number[] = [];
  let addCpu = 0;
  let delCpu = 0;
  for (let i = 0; i < runs; i++) {
    const ns = `${PREFIX}c`;
    sh(["ip", "netns", "add", ns]);
    try {
      let c = cpuMs();
      let t = process.hrtime.bigint();
      const result = runChain(sub, "ADD", `bench${i}`, `/var/run/netns/${ns}`);
      adds.push(Number(process.hrtime.bigint() - t) / 1e6);
      addCpu += cpuMs() - c;
      c = cpuMs();
      t = process.hrtime.bigint();
      runChain(sub, "DEL", `bench${i}`, `/var/run/netns/${ns}`, result);
      dels.push(Number(process.hrtime.bigint() - t) / 1e6);
      delCpu += cpuMs() - c;
    } finally {
      sh(["ip", "netns", "del", ns]);
    }
  }
  // Ticks are coarse (10 ms): the mean over the runs, not a median of per-run counts.
  return { add: median(adds), del: median(dels), addCpu: addCpu / runs, delCpu: delCpu / runs };
}

function versionMs(f: Flavour, runs: number): number {
  const xs: number[] = [];
  for (let i = 0; i < runs * 2; i++) {
    const t = process.hrtime.bigint();
    spawnSync(`${f.bin}/bridge`, [], {
      env: { ...f.env, PATH: process.env["PATH"], CNI_COMMAND: "VERSION" },
    });
    xs.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return median(xs);
}

/** Processes one chain ADD and its DEL start (distinct pids that exec'd, under strace -f). */
function processes(f: Flavour, store: string): { add?: number; del?: number } {
  if (spawnSync("strace", ["-V"]).status !== 0) return {};
  const ns = `${PREFIX}s`;
  const tag = f.label.replace(/\W/g, "");
  const logs = { ADD: join(store, `strace-add-${tag}`), DEL: join(store, `strace-del-${tag}`) };
  for (const log of Object.values(logs)) rmSync(log, { force: true });
  const wrap = (log: string): string[] => ["strace", "-f", "-qq", "-A", "-e", "trace=execve", "-o", log];
  sh(["ip", "netns", "add", ns]);
  // A resident daemon's children are not the driver's: strace follows it too, for each window.
  const traced = (log: string, fn: () => unknown): number => {
    const d = daemon
      ? spawn("strace", ["-f", "-qq", "-e", "trace=execve", "-p", String(daemon.pid), "-o", `${log}.daemon`])
      : undefined;
    if (d) spawnSync("sleep", ["0.5"]); // strace attaches
    try {
      fn();
    } finally {
      d?.kill("SIGINT");
      if (d) spawnSync("sleep", ["0.5"]);
    }
    const own = processesOf(readFileSync(log, "utf8"));
    return own + (d && existsSync(`${log}.daemon`) ? processesOf(readFileSync(`${log}.daemon`, "utf8")) : 0);
  };
  try {
    let result: unknown;
    const add = traced(logs.ADD, () => {
      result = runChain(f, "ADD", "strace", `/var/run/netns/${ns}`, undefined, wrap(logs.ADD));
    });
    const del = traced(logs.DEL, () =>
      runChain(f, "DEL", "strace", `/var/run/netns/${ns}`, result, wrap(logs.DEL)),
    );
    return { add, del };
  } catch {
    return {};
  } finally {
    sh(["ip", "netns", "del", ns]);
  }
}

/** Peak RSS of one bridge ADD process, in MiB (GNU time). */
function peakMemoryMiB(f: Flavour): number | undefined {
  if (!existsSync("/usr/bin/time")) return undefined;
  const ns = `${PREFIX}m`;
  sh(["ip", "netns", "add", ns]);
  try {
    const conf = f.chain[0]!;
    const env = {
      ...f.env,
      PATH: process.env["PATH"],
      CNI_CONTAINERID: "mem",
      CNI_NETNS: `/var/run/netns/${ns}`,
      CNI_IFNAME: "eth0",
      CNI_PATH: f.bin,
    };
    const add = spawnSync("/usr/bin/time", ["-f", "MAXRSS %M", `${f.bin}/bridge`], {
      input: JSON.stringify(conf),
      env: { ...env, CNI_COMMAND: "ADD" },
      encoding: "utf8",
    });
    spawnSync(`${f.bin}/bridge`, [], { input: JSON.stringify(conf), env: { ...env, CNI_COMMAND: "DEL" } });
    const kb = /MAXRSS (\d+)/.exec(add.stderr)?.[1];
    return kb ? Number(kb) / 1024 : undefined;
  } finally {
    sh(["ip", "netns", "del", ns]);
  }
}

async function inside(given: Flavour, p: Params, store: string): Promise<Record<string, number | undefined>> {
  let f = given;
  if (f.resident) {
    daemon = await startBenchResident(f.bin, store);
    f = { ...f, env: { ...f.env, ...daemon.env } };
  }
  let figures: Record<string, number | undefined> = {};
  try {
    figures = await measure(f, p, store);
  } finally {
    const counts = await daemon?.stop();
    if (counts) {
      // A refused call ran in-process: the flavour's figures would not be the daemon's.
      console.error(`  ${f.label}: ${describeCounts(counts)}`);
      figures["resident calls served"] = counts.served;
      figures["resident calls refused"] = counts.refused;
    }
  }
  return figures;
}

async function measure(f: Flavour, p: Params, store: string): Promise<Record<string, number | undefined>> {
  const figures: Record<string, number | undefined> = {};
  try {
    const probe = `${PREFIX}w`;
    sh(["ip", "netns", "add", probe]);
    try {
      runChain(
        f,
        "DEL",
        "probe",
        `/var/run/netns/${probe}`,
        runChain(f, "ADD", "probe", `/var/run/netns/${probe}`),
      );
    } finally {
      sh(["ip", "netns", "del", probe]);
    }
  } catch (e) {
    console.error(
      `  ${f.label}: the chain does not work (${(e as Error).message.split("\n")[0]?.slice(0, 160)})`,
    );
    return figures;
  }
  figures["VERSION ms"] = versionMs(f, p.runs);
  const bridge = timeChain(f, 1, p.runs);
  figures["bridge ADD ms"] = bridge.add;
  figures["bridge DEL ms"] = bridge.del;
  const procs = processes(f, store);
  figures["processes per chain ADD"] = procs.add;
  figures["processes per chain DEL"] = procs.del;
  figures["peak RSS bridge ADD MiB"] = peakMemoryMiB(f);
  if (daemon)
    figures["resident daemon RSS MiB"] =
      Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${daemon.pid}/status`, "utf8"))?.[1]) / 1024;
  const attached: Attached[] = [];
  try {
    for (const n of [...p.populations].sort((a, b) => a - b)) {
      const t0 = Date.now();
      await fill(f, attached.length, n, p.parallel, attached);
      if (n > 0) console.error(`  ${f.label}: ${n} attached (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
      const chain = timeChain(f, 4, p.runs);
      const at = n === 0 ? "" : `, ${n} attached`;
      figures[`chain ADD ms${at}`] = chain.add;
      figures[`chain DEL ms${at}`] = chain.del;
      figures[`chain ADD+DEL ms${at}`] = chain.add + chain.del;
      figures[`chain ADD CPU ms${at}`] = chain.addCpu;
      figures[`chain DEL CPU ms${at}`] = chain.delCpu;
    }
  } finally {
    await empty(attached, p.parallel);
  }
  return figures;
}

// ---------------------------------------------------------------------------------------------
// The parent: one host namespace per flavour, the table.

function printTable(saved: Array<{ flavour: string; figures: Record<string, number | undefined> }>): void {
  const keys = [...new Set(saved.flatMap((s) => Object.keys(s.figures)))];
  // Ratios only against upstream 1.1.1 (left out with --only, then no ratios).
  const base = saved[0]!.flavour.startsWith("upstream 1.1.1") ? saved[0]!.figures : {};
  const cell = (k: string, v: number | undefined, isBase: boolean): string => {
    if (v === undefined) return "n/a";
    if (k.startsWith("processes") || k.startsWith("resident calls")) return String(v);
    const b = base[k];
    const ratio = !isBase && b && !k.startsWith("peak") ? ` (${(v / b).toFixed(2)}x)` : "";
    return `${v.toFixed(1)}${ratio}`;
  };
  console.log(`${"flavour".padEnd(34)} ${saved.map((s) => s.flavour.padEnd(33)).join("")}`);
  for (const k of keys)
    console.log(`${k.padEnd(34)} ${saved.map((s, i) => cell(k, s.figures[k], i === 0).padEnd(33)).join("")}`);
  console.log("\nratios are against upstream 1.1.1 in the same run (below 1.00x: faster)");
}

/** The driver inside one flavour's host namespace; its last line of output is the figures. */
function runInside(host: string, arg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        host,
        process.execPath,
        ...process.execArgv,
        fileURLToPath(import.meta.url),
        "--inside",
        arg,
      ],
      { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, [PREFIX_ENV]: PREFIX } },
    );
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("error", reject);
    child.on("close", () => resolve(out));
  });
}

const USAGE = `usage: node --import tsx bench/chain.ts [--runs 15] [--populations 0,200,2000] [--parallel 4]
                                        [--upstream-current DIR] [--only LABEL,...]
       node --import tsx bench/chain.ts [runs] [population]   (the old form: 0 and that population)
  --runs N               runs per figure (default 15)
  --populations LIST     containers already attached per figure (0 is always measured)
  --parallel N           chains at a time while filling (default 4)
  --upstream-current DIR upstream's current plugins (nftables backends) as one more flavour
  --only LABEL,...       only the flavours whose label contains one of these`;

async function main(): Promise<void> {
  const { values, positionals } = benchArgs({
    usage: USAGE,
    maxPositionals: 2,
    options: {
      runs: { type: "string" },
      populations: { type: "string" },
      parallel: { type: "string", default: "4" },
      "upstream-current": { type: "string" },
      only: { type: "string" },
      baseline: { type: "string" },
      inside: { type: "string" },
    },
  });
  if (values.inside) {
    const { f, p, store } = JSON.parse(values.inside) as { f: Flavour; p: Params; store: string };
    process.stdout.write(JSON.stringify(await inside(f, p, store)) + "\n");
    return;
  }
  const p: Params = {
    runs: intArg(USAGE, "runs", values.runs ?? positionals[0], 15, 1),
    populations: values.populations
      ? intListArg(USAGE, "--populations", values.populations)
      : positionals[1] !== undefined
        ? [0, intArg(USAGE, "population", positionals[1], 0)]
        : [0, 200, 2000],
    parallel: intArg(USAGE, "--parallel", values.parallel, 4, 1),
  };
  if (!p.populations.includes(0)) p.populations.unshift(0);
  const upstreamCurrent = values["upstream-current"];
  if (upstreamCurrent && !existsSync(join(upstreamCurrent, "bridge")))
    throw new Error(`--upstream-current ${upstreamCurrent}: no bridge plugin there`);
  const store = mkdtempSync(join(tmpdir(), "cni-nft-bench-"));
  const only = values.only?.split(",");
  const list = flavours(upstreamCurrent, store, values.baseline).filter(
    (f) => !only || only.some((o) => f.label.includes(o)),
  );
  console.log(
    `runs per figure: ${p.runs}; populations: ${p.populations.join(", ")} (filled ${p.parallel} at a time); our plugins: ${OURS}\n`,
  );
  const saved: Array<{ flavour: string; figures: Record<string, number | undefined> }> = [];
  removeNamespacesOnSignals(PREFIX);
  try {
    for (const [k, f] of list.entries()) {
      const host = `${PREFIX}h${k}`;
      sh(["ip", "netns", "add", host]);
      try {
        sh(["ip", "-n", host, "link", "set", "lo", "up"]);
        const t0 = Date.now();
        const stdout = await runInside(host, JSON.stringify({ f, p, store }));
        const last = stdout.trim().split("\n").pop() ?? "{}";
        saved.push({ flavour: f.label, figures: JSON.parse(last) as Record<string, number | undefined> });
        console.error(`  ${f.label}: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      } finally {
        removeNamespaces(PREFIX);
      }
    }
    printTable(saved);
    // Figures move with what else runs: the load says how quiet the machine was.
    console.log(
      `load average at the end: ${loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")}`,
    );
    saveResults(
      "chain",
      {
        runs: p.runs,
        populations: p.populations,
        population: Math.max(...p.populations),
        loadAverage: loadavg()[0],
      },
      saved,
    );
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
}

await main();
