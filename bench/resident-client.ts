/**
 * Where a plugin call through the resident daemon spends its time, client side and daemon side,
 * for one or two builds of the compiled plugins in one interleaved run (docs/resident.md,
 * docs/performance.md "The resident daemon"): Bun's runtime alone (a compiled `hello`), the
 * front's VERSION, the binary's VERSION (Bun, the entry, the full dispatch), a tuning DEL (no work) in-process
 * and through a daemon (through the front and straight to cni-nft-client, or the binary in builds
 * before it), and podman's chain bridge (ipMasq) -> portmap (one mapping) ->
 * firewall, ADD then DEL in reverse, one plugin per row (real work: veth, IPAM, nft or
 * iptables-save/restore with --backend iptables) in-process and through the daemon.
 *
 * The driver runs inside a throwaway host namespace (nsenter, so the daemons share its mount
 * namespace and serve its children), one daemon per build. Per step: the median wall time of a
 * plain run (spawnSync from the driver: its own start is in every figure, the `hello` row shows
 * it), the CPU time of a run under bash `times` (the process and what it waited for; mean of the
 * middle 80% of the runs, as `times` counts in ms), and the daemon's CPU per call (the sum of its
 * threads' schedstat, ns). The front is a C executable where the build had a cc (the client
 * itself: through the daemon it execs nothing), else a sh script (docs/resident.md "The fronts").
 *
 * `times` counts whole milliseconds, and one call of a front costs about one. `--loop N` measures
 * the CPU of every step that is one call with the same stdin each time (hello, VERSION, tuning
 * DEL) as N calls from one bash loop, divided by N (to 0.01 ms with N = 100), and the daemon's
 * CPU over the same N; each figure then includes bash's fork of each call, which the row
 * "/bin/true" measures alone. The chain's steps (each ADD takes the one before's result) stay
 * one call per `times`.
 *
 *   node --import tsx bench/resident-client.ts [--runs 60] [--loop N] [--bin DIR] [--baseline DIR]
 *       [--backend nftables|iptables]
 *
 * --bin defaults to dist/compiled; --baseline is another build's dist/compiled (a copy of the
 * directory is enough: the fronts exec the binary beside them), printed first.
 *
 * The plugins' lock files are in /run, shared by every test and bench on the machine (their host
 * namespaces are network namespaces only): the bench runs in a private /run of its own
 * (bench/lib/private-run.ts) unless given `--shared-run`.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CPU_TIMED, cpuMs } from "../test/helpers/soak-growth.js";
import { benchArgs, choiceArg, intArg } from "./lib/args.js";
import { median } from "../test/helpers/soak.js";
import { chainConfs } from "../test/helpers/chain.js";
import { removeNamespaces, removeNamespacesOnSignals } from "./lib/namespaces.js";
import { describeCounts, startBenchResident, type BenchResident } from "./lib/resident.js";
import { privateRun, SHARED_RUN_OPTION, SHARED_RUN_USAGE } from "./lib/private-run.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PREFIX = `cnrc${process.pid}`;

interface Inside {
  runs: number;
  /** Calls per bash process for the CPU of a repeatable step (1: one call under `times`). */
  loop: number;
  /** The bridge's backend (ipMasq on, so iptables means iptables-restore runs). */
  backend: "nftables" | "iptables";
  builds: { label: string; dir: string }[];
  container: string;
  store: string;
}

interface Step {
  label: string;
  argv: string[];
  env: Record<string, string>;
  input: () => string;
  /** Gets the step's stdout (an ADD's result for the calls after it). */
  took?: (stdout: string) => void;
  /** One call with the same stdin every time: its CPU may be measured in a loop (--loop). */
  repeatable?: boolean;
}
interface Case {
  build: string;
  daemon?: number;
  steps: Step[];
}
interface Figures {
  wall: number[];
  cpu: number[];
  daemonNs: number;
  calls: number;
}

/** CPU nanoseconds of every live thread of a process so far. */
function threadsNs(pid: number): number {
  let ns = 0;
  for (const t of readdirSync(`/proc/${pid}/task`))
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // the thread ended
    }
  return ns;
}

/**
 * argv prefix: `n` runs of the command from one bash, each with `input` on stdin (none when
 * empty) and its stdout dropped, then the children's CPU on stderr as CPU_TIMED prints it (cpuMs).
 * The input is bash's here-string, written by bash itself: not in its children's time.
 */
function cpuLooped(n: number, input: string): string[] {
  const body =
    'n=$1 input=$2; shift 2; for ((i = 0; i < n; i++)); do if [ -n "$input" ]; then "$@" <<<"$input"; ' +
    'else "$@" </dev/null; fi >/dev/null || exit 1; done; times >&2';
  return ["bash", "--norc", "-c", body, "cpu-looped", String(n), input];
}

/** Mean of the middle 80%: `times` counts whole ms, so a median would be a whole ms too. */
function trimmedMean(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const cut = Math.floor(s.length / 10);
  const mid = s.slice(cut, s.length - cut);
  return mid.reduce((a, b) => a + b, 0) / mid.length;
}

function buildHello(dir: string): string | undefined {
  const bun = join(ROOT, "node_modules/bun/bin/bun.exe");
  const src = join(dir, "hello.ts");
  writeFileSync(src, 'import { writeSync } from "node:fs";\nwriteSync(1, "hello\\n");\n');
  const out = join(dir, "hello");
  const r = spawnSync(bun, [
    "build",
    "--compile",
    "--minify",
    "--bytecode",
    "--format=cjs",
    src,
    "--outfile",
    out,
  ]);
  return r.status === 0 ? out : undefined;
}

async function inside(p: Inside): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "cni-nft-bench-rc-"));
  const daemons: BenchResident[] = [];
  try {
    const hello = buildHello(work);
    const base = {
      PATH: process.env["PATH"]!,
      CNI_CONTAINERID: "rc",
      CNI_NETNS: p.container,
      CNI_IFNAME: "eth0",
    };
    const tuning = JSON.stringify({ cniVersion: "1.0.0", name: "rcnet", type: "tuning" });
    // bridge (ipMasq) -> portmap (one mapping) -> firewall, as libcni runs them: ADD with the
    // previous result, DEL in reverse with the last one.
    const confs = chainConfs({
      name: "rcnet",
      backend: p.backend,
      dataDir: p.store,
      subnet: "10.216.0.0/24",
    }).map((c) =>
      c["type"] === "portmap"
        ? { ...c, runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: "tcp" }] } }
        : c,
    );
    const cases: Case[] = [];
    const looped = p.loop > 1;
    // What each looped figure includes besides the call: the loop's fork and an exec.
    if (looped)
      cases.push({
        build: "",
        steps: [
          {
            label: "/bin/true (a loop's fork+exec)",
            argv: ["/bin/true"],
            env: {},
            input: () => "",
            repeatable: true,
          },
        ],
      });
    if (hello)
      cases.push({
        build: "",
        steps: [
          { label: "compiled hello (Bun alone)", argv: [hello], env: {}, input: () => "", repeatable: true },
        ],
      });
    for (const [k, b] of p.builds.entries()) {
      const d = await startBenchResident(b.dir, work);
      daemons.push(d);
      const env = { ...base, CNI_PATH: b.dir };
      const resident = { ...env, ...d.env };
      const front = join(b.dir, "tuning");
      const binary = join(b.dir, "cni-nft-plugins");
      // What the front execs when a socket exists: the client, or (builds before it) the binary.
      const client = existsSync(join(b.dir, "cni-nft-client")) ? join(b.dir, "cni-nft-client") : binary;
      const one = (
        label: string,
        argv: string[],
        e: Record<string, string>,
        input = tuning,
        daemon?: number,
      ): Case => ({
        build: b.label,
        ...(daemon ? { daemon } : {}),
        steps: [{ label, argv, env: e, input: () => input, repeatable: true }],
      });
      cases.push(
        one("VERSION, front", [front], { ...env, CNI_COMMAND: "VERSION" }, ""),
        one("VERSION, binary", [binary], { ...env, CNI_COMMAND: "VERSION" }, ""),
        one("tuning DEL in-process", [front], { ...env, CNI_COMMAND: "DEL" }),
        one("tuning DEL daemon", [front], { ...resident, CNI_COMMAND: "DEL" }, tuning, d.pid),
        one(
          "tuning DEL daemon, no front",
          [client],
          { ...resident, CNI_COMMAND: "DEL", CNI_NFT_PLUGIN: "tuning" },
          tuning,
          d.pid,
        ),
      );
      for (const [mode, e, daemon] of [
        ["in-process", env, undefined],
        ["daemon", resident, d.pid],
      ] as const) {
        const results: string[] = [];
        const id = `rc-${k}-${mode}`;
        const call = (
          conf: Record<string, unknown>,
          command: "ADD" | "DEL",
          prev: () => string | undefined,
        ): Step => ({
          label: `${String(conf["type"])} ${command} ${mode}`,
          argv: [join(b.dir, String(conf["type"]))],
          env: { ...e, CNI_COMMAND: command, CNI_CONTAINERID: id },
          input: () => {
            const before = prev();
            return JSON.stringify(before ? { ...conf, prevResult: JSON.parse(before) as object } : conf);
          },
        });
        const adds = confs.map((conf, i) => ({
          ...call(conf, "ADD", () => results[i - 1]),
          took: (out: string) => (results[i] = out),
        }));
        const dels = [...confs].reverse().map((conf) => call(conf, "DEL", () => results[confs.length - 1]));
        cases.push({
          build: b.label,
          ...(daemon ? { daemon } : {}),
          steps: [...adds, ...dels],
        });
      }
    }
    const figures = new Map<string, Figures>();
    const fig = (k: string): Figures => {
      let f = figures.get(k);
      if (!f) figures.set(k, (f = { wall: [], cpu: [], daemonNs: 0, calls: 0 }));
      return f;
    };
    const load0 = loadavg()[0]!;
    for (let r = 0; r < p.runs; r++)
      for (const c of cases)
        for (const timed of [false, true])
          for (const s of c.steps) {
            const calls = timed && looped && s.repeatable ? p.loop : 1;
            const before = c.daemon ? threadsNs(c.daemon) : 0;
            const t0 = process.hrtime.bigint();
            const prefix = calls > 1 ? cpuLooped(calls, s.input()) : CPU_TIMED;
            const argv = timed ? [...prefix, ...s.argv] : s.argv;
            const out = spawnSync(argv[0]!, argv.slice(1), {
              env: s.env,
              input: calls > 1 ? "" : s.input(),
              encoding: "utf8",
            });
            const ms = Number(process.hrtime.bigint() - t0) / 1e6;
            if (out.status !== 0)
              throw new Error(`${c.build} ${s.label}: exit ${out.status}: ${out.stdout} ${out.stderr}`);
            const f = fig(`${s.label}\0${c.build}`);
            if (c.daemon) {
              f.daemonNs += threadsNs(c.daemon) - before;
              f.calls += calls;
            }
            if (timed) f.cpu.push(cpuMs(out.stderr) / calls);
            else f.wall.push(ms);
            s.took?.(out.stdout);
          }
    const load1 = loadavg()[0]!;
    const labels = [...new Set(cases.flatMap((c) => c.steps.map((s) => s.label)))];
    const cols = p.builds.map((b) => b.label);
    const cell = (label: string, build: string): string => {
      const f = figures.get(`${label}\0${build}`) ?? figures.get(`${label}\0`);
      if (!f) return "";
      const d = f.calls ? ` + ${(f.daemonNs / f.calls / 1e6).toFixed(2)}` : "";
      return `${median(f.wall).toFixed(2)} ms, CPU ${trimmedMean(f.cpu).toFixed(2)}${d}`;
    };
    console.log(
      `${p.runs} interleaved runs per step; load average ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end`,
    );
    console.log(
      "wall: median ms of plain runs; CPU: ms of the process and its children (+ the daemon's, per call)",
    );
    console.log(
      looped
        ? `CPU of the one-call steps: ${p.loop} calls per bash loop, per call (bash's fork included: the /bin/true row)\n`
        : "",
    );
    console.log(["step".padEnd(34), ...cols.map((c) => c.padEnd(38))].join(""));
    for (const l of labels) console.log([l.padEnd(34), ...cols.map((c) => cell(l, c).padEnd(38))].join(""));
    // What the parts cost, from the CPU figures above.
    const cpu = (label: string, build: string): number =>
      trimmedMean((figures.get(`${label}\0${build}`) ?? figures.get(`${label}\0`))?.cpu ?? [NaN]);
    console.log("\nCPU ms of the parts of a call the daemon serves (tuning DEL):");
    for (const b of cols) {
      const bunAlone = cpu("compiled hello (Bun alone)", b);
      const parts = [
        `the front and its exec ${(cpu("tuning DEL daemon", b) - cpu("tuning DEL daemon, no front", b)).toFixed(2)}`,
        `Bun's runtime ${bunAlone.toFixed(2)}`,
        `the binary's VERSION beyond Bun ${(cpu("VERSION, binary", b) - bunAlone).toFixed(2)}`,
        `the served call beyond Bun ${(cpu("tuning DEL daemon, no front", b) - bunAlone).toFixed(2)}`,
        ...(looped
          ? [`a loop's fork and exec (in each) ${cpu("/bin/true (a loop's fork+exec)", b).toFixed(2)}`]
          : []),
      ];
      console.log(`  ${b}: ${parts.join("; ")}`);
    }
  } finally {
    // A refused call runs in-process: the daemon rows would time the in-process path. Say so.
    for (const [k, d] of daemons.entries())
      console.log(`${p.builds[k]!.label}: ${describeCounts(await d.stop())}`);
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const usage = `usage: node --import tsx bench/resident-client.ts [--runs 60] [--loop N] [--bin DIR] [--baseline DIR] [--backend B] [--shared-run]
  --runs N        runs per step (default 60)
  --loop N        the CPU of one-call steps from N calls per bash process (default 1: one call,
                  whole ms); 100 gives 0.01 ms
  --bin DIR       the build's dist/compiled (default this tree's)
  --baseline DIR  another build's dist/compiled, printed first
  --backend B     nftables (default) or iptables: the chain's backends
${SHARED_RUN_USAGE}`;
  const { values } = benchArgs({
    usage,
    options: {
      runs: { type: "string", default: "60" },
      loop: { type: "string", default: "1" },
      backend: { type: "string", default: "nftables" },
      bin: { type: "string", default: join(ROOT, "dist", "compiled") },
      baseline: { type: "string" },
      inside: { type: "string" },
      ...SHARED_RUN_OPTION,
    },
  });
  if (values.inside) return inside(JSON.parse(values.inside) as Inside);
  const runs = intArg(usage, "--runs", values.runs, 60, 1);
  const loop = intArg(usage, "--loop", values.loop, 1, 1);
  const backend =
    choiceArg(usage, "--backend", values.backend, ["nftables", "iptables"] as const) ?? "nftables";
  console.log(await privateRun(values["shared-run"]));
  const builds = [
    ...(values.baseline ? [{ label: "baseline", dir: values.baseline }] : []),
    { label: "this build", dir: values.bin },
  ];
  const store = mkdtempSync(join(tmpdir(), "cni-nft-bench-rc-store-"));
  removeNamespacesOnSignals(PREFIX, [store]);
  try {
    for (const n of ["h", "c"]) execFileSync("ip", ["netns", "add", `${PREFIX}${n}`]);
    execFileSync("ip", ["-n", `${PREFIX}h`, "link", "set", "lo", "up"]);
    const arg: Inside = {
      runs,
      loop,
      backend,
      builds,
      container: `/run/netns/${PREFIX}c`,
      store,
    };
    console.log(builds.map((b) => `${b.label}: ${b.dir}`).join("\n"));
    const r = spawnSync(
      "nsenter",
      [
        `--net=/run/netns/${PREFIX}h`,
        "--",
        process.execPath,
        ...process.execArgv,
        fileURLToPath(import.meta.url),
        "--inside",
        JSON.stringify(arg),
      ],
      { stdio: "inherit" },
    );
    if (r.status !== 0) process.exitCode = 1;
  } finally {
    removeNamespaces(PREFIX);
    rmSync(store, { recursive: true, force: true });
  }
}

await main();
