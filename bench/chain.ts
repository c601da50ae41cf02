/**
 * cni-nft's plugins against upstream's Go plugins (1.1.1, /usr/lib/cni), in one run on one
 * machine: one VERSION call, bridge ADD+DEL, and podman's chain (bridge -> portmap -> firewall
 * -> tuning, VERSION before each plugin's ADD and DEL, as libcni does) ADD+DEL. Ours runs with
 * the iptables and with the nftables backends. Prints medians, ratios ours/upstream, processes
 * spawned per chain ADD (strace) and peak memory per plugin process (GNU time).
 *
 * The chain is timed on an empty host and again with POPULATION containers already attached
 * through the same chain (each with its own port mapping): upstream's iptables work grows with
 * the rules already there, ours on nftables does not.
 *
 *   npm run bench            (all benchmarks)   node --import tsx bench/chain.ts [runs] [population]
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { saveResults } from "./lib/results.js";

const RUNS = Number(process.argv[2] ?? 15);
/** Containers already attached when the second set of chain figures is taken. */
const POPULATION = Number(process.argv[3] ?? 200);
const ROOT = new URL("..", import.meta.url).pathname;
const OURS = join(ROOT, "dist", existsSync(join(ROOT, "dist/compiled/cni-nft-plugins")) ? "compiled" : "bin");
const UPSTREAM = "/usr/lib/cni";
const HOST = `cni-nft-bench-${process.pid}`;
const store = mkdtempSync(join(tmpdir(), "cni-nft-bench-"));

type Conf = Record<string, unknown>;
interface Flavour {
  label: string;
  bin: string;
  chain: Conf[];
}

function chainFor(backend: "iptables" | "nftables" | undefined, name: string): Conf[] {
  const b = backend ? { ipMasqBackend: backend } : {};
  const p = backend ? { backend } : {};
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
    { type: "firewall", backend: backend === "nftables" ? "nftables" : "" },
    { type: "tuning" },
  ].map((c) => ({ cniVersion: "0.4.0", name, ...c }));
}

function sh(argv: string[]): string {
  return execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
}

function exec(
  bin: string,
  conf: Conf,
  env: Record<string, string>,
  wrap: string[] = [],
): { ms: number; out: string; err: string; code: number } {
  const argv = ["ip", "netns", "exec", HOST, ...wrap, `${bin}/${String(conf["type"])}`];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0]!, argv.slice(1), {
    input: JSON.stringify(conf),
    env: { PATH: process.env["PATH"], ...env },
    encoding: "utf8",
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { ms, out: r.stdout, err: r.stderr, code: r.status ?? 1 };
}

/** libcni's way: VERSION then ADD per plugin, prevResult threaded; DEL in reverse with the final result. */
function runChain(
  f: Flavour,
  verb: "ADD" | "DEL",
  id: string,
  netns: string,
  prev?: unknown,
  wrap: string[] = [],
): unknown {
  const env = {
    CNI_CONTAINERID: id,
    CNI_NETNS: netns,
    CNI_IFNAME: "eth0",
    CNI_PATH: f.bin,
    CNI_ARGS: "IgnoreUnknown=1",
  };
  let result: unknown = prev;
  const plugins = verb === "ADD" ? f.chain : [...f.chain].reverse();
  for (const conf of plugins) {
    exec(f.bin, conf, { ...env, CNI_COMMAND: "VERSION" }, wrap);
    const input = result !== undefined ? { ...conf, prevResult: result } : conf;
    const r = exec(f.bin, input, { ...env, CNI_COMMAND: verb }, wrap);
    if (r.code !== 0)
      throw new Error(`${f.label}: ${String(conf["type"])} ${verb} failed: ${r.out} ${r.err}`);
    if (verb === "ADD") result = JSON.parse(r.out) as unknown;
  }
  return result;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
};

function timeChain(f: Flavour, length: number): { add: number; del: number } {
  const sub: Flavour = { ...f, chain: f.chain.slice(0, length) };
  const adds: number[] = [];
  const dels: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const ns = `${HOST}-c`;
    sh(["ip", "netns", "add", ns]);
    try {
      let t = process.hrtime.bigint();
      const result = runChain(sub, "ADD", `bench${i}`, `/var/run/netns/${ns}`);
      adds.push(Number(process.hrtime.bigint() - t) / 1e6);
      t = process.hrtime.bigint();
      runChain(sub, "DEL", `bench${i}`, `/var/run/netns/${ns}`, result);
      dels.push(Number(process.hrtime.bigint() - t) / 1e6);
    } finally {
      sh(["ip", "netns", "del", ns]);
    }
  }
  return { add: median(adds), del: median(dels) };
}

/** Attaches n containers through the full chain (ports 20000+i); returns their teardown. */
function populate(f: Flavour, n: number): () => void {
  const attached: Array<{ ns: string; id: string; flavour: Flavour; result: unknown }> = [];
  const teardown = (): void => {
    for (const a of attached.reverse()) {
      try {
        runChain(a.flavour, "DEL", a.id, `/var/run/netns/${a.ns}`, a.result);
      } finally {
        sh(["ip", "netns", "del", a.ns]);
      }
    }
  };
  try {
    for (let i = 0; i < n; i++) {
      const ns = `${HOST}-p${i}`;
      const chain = f.chain.map((c) =>
        c["type"] === "portmap"
          ? {
              ...c,
              runtimeConfig: { portMappings: [{ hostPort: 20000 + i, containerPort: 80, protocol: "tcp" }] },
            }
          : c,
      );
      const flavour = { ...f, chain };
      sh(["ip", "netns", "add", ns]);
      const result = runChain(flavour, "ADD", `pop${i}`, `/var/run/netns/${ns}`);
      attached.push({ ns, id: `pop${i}`, flavour, result });
    }
  } catch (e) {
    teardown();
    throw e;
  }
  return teardown;
}

function versionMs(f: Flavour): number {
  const xs: number[] = [];
  for (let i = 0; i < RUNS * 2; i++) xs.push(exec(f.bin, f.chain[0]!, { CNI_COMMAND: "VERSION" }).ms);
  return median(xs);
}

/** Processes started by one chain ADD with its VERSION calls (execve under strace, plugins included). */
function processesPerAdd(f: Flavour): number | undefined {
  if (spawnSync("strace", ["-V"]).status !== 0) return undefined;
  const ns = `${HOST}-s`;
  const log = join(store, `strace-${f.label.replace(/\W/g, "")}`);
  sh(["ip", "netns", "add", ns]);
  try {
    const result = runChain(f, "ADD", "strace", `/var/run/netns/${ns}`, undefined, [
      "strace",
      "-f",
      "-qq",
      "-A",
      "-e",
      "trace=execve",
      "-o",
      log,
    ]);
    runChain(f, "DEL", "strace", `/var/run/netns/${ns}`, result);
    // Each plugin run appends (-A) to the log; count successful execve calls over all of them.
    return readFileSync(log, "utf8")
      .split("\n")
      .filter((l) => /execve\(/.test(l) && / = 0$/.test(l)).length;
  } catch {
    return undefined;
  } finally {
    sh(["ip", "netns", "del", ns]);
  }
}

/** Peak RSS of one bridge ADD process, in MiB (GNU time). */
function peakMemory(f: Flavour): number | undefined {
  if (!existsSync("/usr/bin/time")) return undefined;
  const ns = `${HOST}-m`;
  sh(["ip", "netns", "add", ns]);
  try {
    const conf = f.chain[0]!;
    const env = {
      CNI_CONTAINERID: "mem",
      CNI_NETNS: `/var/run/netns/${ns}`,
      CNI_IFNAME: "eth0",
      CNI_PATH: f.bin,
      CNI_COMMAND: "ADD",
    };
    const r = exec(f.bin, conf, env, ["/usr/bin/time", "-f", "MAXRSS %M"]);
    exec(f.bin, conf, { ...env, CNI_COMMAND: "DEL" });
    const kb = /MAXRSS (\d+)/.exec(r.err)?.[1];
    return kb ? Number(kb) / 1024 : undefined;
  } finally {
    sh(["ip", "netns", "del", ns]);
  }
}

function chainWorks(f: Flavour): boolean {
  const ns = `${HOST}-w`;
  sh(["ip", "netns", "add", ns]);
  try {
    const r = runChain(f, "ADD", "probe", `/var/run/netns/${ns}`);
    runChain(f, "DEL", "probe", `/var/run/netns/${ns}`, r);
    return true;
  } catch (e) {
    console.log(`  (${(e as Error).message.split("\n")[0]?.slice(0, 160)})`);
    return false;
  } finally {
    sh(["ip", "netns", "del", ns]);
  }
}

function main(): void {
  sh(["ip", "netns", "add", HOST]);
  try {
    sh(["ip", "netns", "exec", HOST, "ip", "link", "set", "lo", "up"]);
    const flavours: Flavour[] = [
      { label: "upstream 1.1.1 (Go, iptables)", bin: UPSTREAM, chain: chainFor(undefined, "upstream") },
      { label: "cni-nft, iptables backends", bin: OURS, chain: chainFor("iptables", "oursipt") },
      { label: "cni-nft, nftables backends", bin: OURS, chain: chainFor("nftables", "oursnft") },
    ];
    console.log(
      `runs per figure: ${RUNS}; population for the crowded figures: ${POPULATION}; our plugins: ${OURS}\n`,
    );
    const rows: Array<Record<string, string>> = [];
    const saved: Array<{ flavour: string; figures: Record<string, number | undefined> }> = [];
    const base: Record<string, number> = {};
    for (const f of flavours) {
      const full = chainWorks(f);
      const version = versionMs(f);
      const bridge = timeChain(f, 1);
      const chain = full ? timeChain(f, 4) : undefined;
      let crowded: { add: number; del: number } | undefined;
      if (full && POPULATION > 0) {
        const teardown = populate(f, POPULATION);
        try {
          crowded = timeChain(f, 4);
        } finally {
          teardown();
        }
      }
      const procs = full ? processesPerAdd(f) : undefined;
      const mem = peakMemory(f);
      const figures: Record<string, number | undefined> = {
        "VERSION ms": version,
        "bridge ADD ms": bridge.add,
        "bridge DEL ms": bridge.del,
        "chain ADD ms": chain?.add,
        "chain DEL ms": chain?.del,
        "chain ADD+DEL ms": chain ? chain.add + chain.del : undefined,
        [`chain ADD ms, ${POPULATION} attached`]: crowded?.add,
        [`chain DEL ms, ${POPULATION} attached`]: crowded?.del,
        [`chain ADD+DEL ms, ${POPULATION} attached`]: crowded ? crowded.add + crowded.del : undefined,
      };
      saved.push({
        flavour: f.label,
        figures: { ...figures, "processes per chain ADD": procs, "peak RSS bridge ADD MiB": mem },
      });
      const row: Record<string, string> = { flavour: f.label };
      for (const [k, v] of Object.entries(figures)) {
        if (f.bin === UPSTREAM && v !== undefined) base[k] = v;
        const ratio = v !== undefined && base[k] ? ` (${(v / base[k]).toFixed(2)}x)` : "";
        row[k] = v === undefined ? "n/a" : `${v.toFixed(1)}${f.bin === UPSTREAM ? "" : ratio}`;
      }
      row["processes per chain ADD"] = procs === undefined ? "n/a" : String(procs);
      row["peak RSS bridge ADD MiB"] = mem === undefined ? "n/a" : mem.toFixed(1);
      rows.push(row);
    }
    for (const key of Object.keys(rows[0]!))
      console.log(`${key.padEnd(36)} ${rows.map((r) => (r[key] ?? "").padEnd(32)).join("")}`);
    console.log("\nratios are cni-nft / upstream (below 1.00x: cni-nft is faster)");
    saveResults("chain", { runs: RUNS, population: POPULATION }, saved);
  } finally {
    sh(["ip", "netns", "del", HOST]);
    rmSync(store, { recursive: true, force: true });
  }
}

main();
