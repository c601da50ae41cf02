/**
 * portmap benchmark (root; throwaway namespaces). For our nftables backend, our iptables backend,
 * upstream 1.1.1's iptables portmap and, when its directory is given, upstream's current build
 * with its nftables backend, with N = 0, 1,000, 5,000 and 10,000 mappings already in place: the
 * wall time of one more ADD and its DEL (median of a few), and the time to open a new TCP
 * connection from outside through the mapped port (median of many); then the same for
 * masquerade (bridge ADD/DEL with ipMasq on the nftables backend, bench/lib/masquerade.ts).
 * Ratios are against the same backend at N = 0.
 *
 * The N containers of the nftables backends are added through the plugin itself (bench/lib/fill.ts:
 * one portmap process per container, BENCH_PORTMAP_FILL_PARALLEL at a time), and the time that
 * takes is the fill figure; the iptables ones are written in bulk in the exact form each backend
 * writes them (one iptables-restore), as filling them through the plugin takes hours.
 *
 * Run with `npm run bench` or `node --import tsx bench/portmap.ts [--upstream-current DIR]`, in a
 * /run of its own (bench/lib/private-run.ts; `--shared-run` keeps the machine's).
 * Environment: BENCH_PORTMAP_N (comma list, default 0,1000,5000,10000), BENCH_PORTMAP_ROUNDS
 * (ADD/DEL pairs, default 5), BENCH_PORTMAP_CONNS (connections per figure, default 200),
 * BENCH_PORTMAP_FILL_PARALLEL (default 4), BENCH_UPSTREAM_CURRENT (same as --upstream-current),
 * BENCH_UPSTREAM_NFT_MAX (largest N for upstream's nftables portmap, default 5000: it fills
 * slowly), BENCH_PORTMAP_BACKENDS (comma list, default all).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { containerRules, dnatChainName } from "../plugins/meta/portmap/portmap_iptables.js";
import { NFTables } from "../src/nftables/index.js";
import { NFT_TABLE } from "../plugins/meta/portmap/portmap_nftables_layout.js";
import { benchConf, bulkFill } from "./lib/portmap-bulk.js";
import { saveResults } from "./lib/results.js";
import { fillerAddr, fillerPort } from "./lib/fill.js";
import { benchMasquerade, type MasqRow } from "./lib/masquerade.js";
import { removeNamespaces, removeNamespacesOnSignals } from "./lib/namespaces.js";
import { benchArgs } from "./lib/args.js";
import { privateRun, SHARED_RUN_OPTION, SHARED_RUN_USAGE } from "./lib/private-run.js";

const ARGS = benchArgs({
  usage: `usage: node --import tsx bench/portmap.ts [--upstream-current DIR] [--shared-run]
  --upstream-current DIR  upstream's current plugins (nftables portmap) as one more backend
${SHARED_RUN_USAGE}
Environment: BENCH_PORTMAP_N (default 0,1000,5000,10000), BENCH_PORTMAP_ROUNDS (default 5),
BENCH_PORTMAP_CONNS (default 200), BENCH_PORTMAP_FILL_PARALLEL (default 4), BENCH_PORTMAP_FILL
(plugin, bulk or resident), BENCH_UPSTREAM_CURRENT, BENCH_UPSTREAM_NFT_MAX (default 5000),
BENCH_PORTMAP_BACKENDS (default all).`,
  options: { "upstream-current": { type: "string" }, ...SHARED_RUN_OPTION },
}).values;
/** The plugins' lock files are the run's own (bench/lib/private-run.ts) unless --shared-run. */
const RUN = await privateRun(ARGS["shared-run"]);
const UPSTREAM_CURRENT = ARGS["upstream-current"] ?? process.env["BENCH_UPSTREAM_CURRENT"];
/**
 * `bulk`: write the nftables backend's containers in one nft run (its exact layout) instead of
 * through the plugin; `resident`: through the plugin as thin clients of a resident daemon that
 * the fill starts in its own namespaces (bench/lib/fill.ts). Upstream's fill is always `plugin`.
 */
const FILL_MODE = process.env["BENCH_PORTMAP_FILL"] ?? "plugin";
const FILL_PARALLEL = Number(process.env["BENCH_PORTMAP_FILL_PARALLEL"] ?? 4);
const UPSTREAM_NFT_MAX = Number(process.env["BENCH_UPSTREAM_NFT_MAX"] ?? 5000);
const NS = (process.env["BENCH_PORTMAP_N"] ?? "0,1000,5000,10000").split(",").map(Number);
const ROUNDS = Number(process.env["BENCH_PORTMAP_ROUNDS"] ?? 5);
const CONNS = Number(process.env["BENCH_PORTMAP_CONNS"] ?? 200);
// The plugins as they ship (compiled) when built, else the node shims.
const OUR_BIN = fileURLToPath(
  new URL(
    existsSync(new URL("../dist/compiled/portmap", import.meta.url)) ? "../dist/compiled" : "../dist/bin",
    import.meta.url,
  ),
);
const UPSTREAM_BIN = "/usr/lib/cni";
const TAG = `pmb${process.pid}`;
removeNamespacesOnSignals(TAG);

type Backend = "nftables" | "iptables" | "upstream" | "upstream-nft";
const FILL = fileURLToPath(new URL("./lib/fill.ts", import.meta.url));

function run(
  argv: string[],
  input = "",
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? 1, out, err }));
    child.stdin.on("error", () => undefined); // a command that does not read its input
    child.stdin.end(input);
  });
}
async function sh(argv: string[], input = ""): Promise<string> {
  const r = await run(argv, input);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.err || r.out}`);
  return r.out;
}
const inNs = (ns: string, argv: string[]): string[] => ["ip", "netns", "exec", ns, ...argv];
const loadAverage = (): string =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(" ");
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** host (10.99.0.1 on a veth to the container, 192.0.2.1 on the uplink), out (192.0.2.2), ctr. */
async function topology(b: string): Promise<{ host: string; out: string; ctr: string; server: () => void }> {
  const [host, out, ctr] = ["h", "o", "c"].map((t) => `${TAG}-${b}-${t}`) as [string, string, string];
  for (const ns of [host, out, ctr]) {
    await sh(["ip", "netns", "add", ns]);
    await sh(inNs(ns, ["ip", "link", "set", "lo", "up"]));
  }
  await sh(inNs(host, ["ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", out]));
  await sh(inNs(host, ["ip", "link", "add", "ct0", "type", "veth", "peer", "name", "eth0", "netns", ctr]));
  await sh(
    inNs(host, [
      "sh",
      "-c",
      "ip addr add 192.0.2.1/24 dev up0 && ip addr add 10.99.0.1/16 dev ct0 && ip link set up0 up && ip link set ct0 up && sysctl -qw net.ipv4.ip_forward=1",
    ]),
  );
  await sh(inNs(out, ["sh", "-c", "ip addr add 192.0.2.2/24 dev eth0 && ip link set eth0 up"]));
  await sh(
    inNs(ctr, [
      "sh",
      "-c",
      "ip addr add 10.99.0.2/16 dev eth0 && ip link set eth0 up && ip route add default via 10.99.0.1",
    ]),
  );
  const srv = spawn("ip", [
    "netns",
    "exec",
    ctr,
    process.execPath,
    "-e",
    "require('net').createServer((s)=>s.end()).listen(80,()=>console.log('up'))",
  ]);
  await new Promise<void>((res) => srv.stdout.once("data", () => res()));
  return { host, out, ctr, server: () => srv.kill("SIGKILL") };
}

const conf = benchConf;
const binOf = (b: Backend): string =>
  b === "upstream" ? UPSTREAM_BIN : b === "upstream-nft" ? UPSTREAM_CURRENT! : OUR_BIN;

/** One fill segment: its end, wall ms, CPU ms of the plugin processes and (resident) of the daemon. */
interface FillSegment {
  to: number;
  ms: number;
  pluginsCpuMs?: number;
  daemonCpuMs?: number;
  driverCpuMs?: number;
  served?: number;
  refused?: number;
}

/** Spent filling, per backend (only the backends filled through the plugin). */
const fillMs = new Map<Backend, FillSegment[]>();

/**
 * Adds containers from..to-1: through the plugin for the nftables backends (timed: the fill
 * figure), in bulk as the backend writes them for the iptables ones.
 */
async function populate(b: Backend, host: string, from: number, to: number): Promise<void> {
  if (to <= from) return;
  if (b === "nftables" && FILL_MODE === "bulk") {
    await bulkFill(
      new NFTables({ family: "inet", table: NFT_TABLE, netns: `/var/run/netns/${host}` }),
      from,
      to,
    );
    return;
  }
  if (b === "nftables" || b === "upstream-nft") {
    const resident = b === "nftables" && FILL_MODE === "resident";
    const out = await sh(
      inNs(host, [
        process.execPath,
        "--import",
        "tsx",
        FILL,
        binOf(b),
        String(from),
        String(to),
        String(FILL_PARALLEL),
        "nftables",
        ...(resident ? ["resident"] : []),
      ]),
    );
    const [ms, counts] = out.trim().split("\n");
    const seg: FillSegment = { to, ms: Number(ms), ...(JSON.parse(counts ?? "{}") as object) };
    // A refused call ran in-process: the fill would not be the daemon's.
    if (resident && (seg.refused !== 0 || seg.served !== to - from))
      console.log(
        `  WARNING: the resident daemon served ${seg.served} of ${to - from} calls, refused ${seg.refused}`,
      );
    fillMs.set(b, [...(fillMs.get(b) ?? []), seg]);
    return;
  }
  const lines: string[] = [];
  for (let i = from; i < to; i++) {
    const c = conf(`fill${i}`, fillerAddr(i), fillerPort(i));
    const { rules, entries } = containerRules(c, 4, fillerAddr(i), "10.99.0.0/16");
    lines.push(`:${dnatChainName(c.network, c.containerId)} - [0:0]`, ...rules, ...entries);
  }
  await sh(inNs(host, ["iptables-restore", "-w", "--noflush"]), `*nat\n${lines.join("\n")}\nCOMMIT\n`);
}

async function plugin(b: Backend, host: string, verb: string): Promise<number> {
  const bin = binOf(b);
  const stdin = JSON.stringify({
    cniVersion: "1.0.0",
    name: "benchnet",
    type: "portmap",
    ...(b === "upstream" ? {} : { backend: b === "upstream-nft" ? "nftables" : b }),
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] },
    prevResult: {
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", sandbox: "/var/run/netns/x" }],
      ips: [{ address: "10.99.0.2/16", interface: 0 }],
    },
  });
  const env = {
    PATH: process.env["PATH"],
    CNI_COMMAND: verb,
    CNI_CONTAINERID: "measured",
    CNI_NETNS: "/var/run/netns/x",
    CNI_IFNAME: "eth0",
    CNI_PATH: bin,
  };
  const t0 = performance.now();
  const r = await run(inNs(host, [`${bin}/portmap`]), stdin, env);
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`${b} ${verb}: ${r.out} ${r.err}`);
  return ms;
}

/** Median milliseconds from connect() to the connection being established, over CONNS connections. */
async function connectTime(out: string): Promise<number> {
  const script = `
const net = require("net"); const t = []; let n = 0;
const one = () => { const s0 = process.hrtime.bigint(); const s = net.connect(8080, "192.0.2.1");
  s.on("connect", () => { t.push(Number(process.hrtime.bigint() - s0) / 1e6); s.destroy(); next(); });
  s.on("error", (e) => { console.error(e.message); process.exit(1); }); };
const next = () => { if (++n > ${CONNS}) { t.sort((a, b) => a - b); console.log(t[t.length >> 1]); return; } one(); };
next();`;
  const r = await sh(inNs(out, [process.execPath, "-e", script]));
  return Number(r.trim());
}

interface Row {
  backend: Backend;
  n: number;
  add: number;
  del: number;
  conn: number;
  /** The same, measured in alternation on an empty host of the same backend (shared load). */
  empty: { add: number; del: number; conn: number };
}

/**
 * One backend's curve. Every figure is taken in alternation with the same on an empty host of the
 * same backend (a second set of namespaces), so a machine whose load changes during the run
 * moves both alike: `empty` is the baseline of each ratio.
 */
async function benchBackend(b: Backend): Promise<Row[]> {
  const t = await topology(b.slice(0, 3));
  const e = await topology(`${b.slice(0, 3)}e`);
  const rows: Row[] = [];
  try {
    let have = 0;
    // Shared chains/table first, as a real host would have them.
    for (const h of [t.host, e.host]) {
      await plugin(b, h, "ADD");
      await plugin(b, h, "DEL");
    }
    for (const n of NS) {
      if (b === "upstream-nft" && n > UPSTREAM_NFT_MAX) break;
      await populate(b, t.host, have, n);
      have = Math.max(have, n);
      const m = { add: [] as number[], del: [] as number[], eAdd: [] as number[], eDel: [] as number[] };
      const rounds = n >= 5000 && b !== "nftables" ? Math.min(ROUNDS, 3) : ROUNDS;
      for (let i = 0; i < rounds; i++) {
        m.add.push(await plugin(b, t.host, "ADD"));
        m.eAdd.push(await plugin(b, e.host, "ADD"));
        m.del.push(await plugin(b, t.host, "DEL"));
        m.eDel.push(await plugin(b, e.host, "DEL"));
      }
      for (const h of [t.host, e.host]) await plugin(b, h, "ADD");
      await connectTime(t.out); // warm up (ARP, caches)
      await connectTime(e.out);
      const conn = await connectTime(t.out);
      const eConn = await connectTime(e.out);
      for (const h of [t.host, e.host]) await plugin(b, h, "DEL");
      const row: Row = {
        backend: b,
        n,
        add: median(m.add),
        del: median(m.del),
        conn,
        empty: { add: median(m.eAdd), del: median(m.eDel), conn: eConn },
      };
      rows.push(row);
      console.log(
        `  ${b.padEnd(9)} N=${String(n).padStart(5)}  ADD ${row.add.toFixed(1)} ms (empty ${row.empty.add.toFixed(1)})  DEL ${row.del.toFixed(1)} ms (empty ${row.empty.del.toFixed(1)})  connect ${conn.toFixed(3)} ms (empty ${eConn.toFixed(3)})`,
      );
    }
  } finally {
    for (const x of [t, e]) {
      x.server();
      removeNamespaces(TAG, [x.host, x.out, x.ctr]);
    }
  }
  return rows;
}

const all: Row[] = [];
console.log(
  `portmap benchmark: N = ${NS.join(", ")}; ${ROUNDS} ADD/DEL pairs; median of ${CONNS} connections; ` +
    `fill ${FILL_PARALLEL} at a time (${FILL_MODE}); upstream current: ${UPSTREAM_CURRENT ?? "not given"}; ` +
    `load average ${loadAverage()}\n${RUN}`,
);
const wanted = (
  process.env["BENCH_PORTMAP_BACKENDS"] ?? "nftables,iptables,upstream,upstream-nft,masquerade"
).split(",");
for (const b of ["nftables", "iptables", "upstream", "upstream-nft"] as const) {
  if (!wanted.includes(b)) continue;
  if (b === "upstream-nft" && !(UPSTREAM_CURRENT && existsSync(`${UPSTREAM_CURRENT}/portmap`))) continue;
  all.push(...(await benchBackend(b)));
}
const masq: MasqRow[] = wanted.includes("masquerade")
  ? await benchMasquerade(run, OUR_BIN, TAG, NS, ROUNDS)
  : [];

const x = (a: number, b0: number): string => `(${(a / b0).toFixed(2)}x)`.padStart(8);
console.log(
  "\nbackend         N      ADD ms  (x empty)   DEL ms  (x empty)   connect ms  (x empty)   (x empty: against an empty host measured in alternation)",
);
for (const r of all)
  console.log(
    `${r.backend.padEnd(12)} ${String(r.n).padStart(5)}  ${r.add.toFixed(1).padStart(8)} ${x(r.add, r.empty.add)}    ${r.del.toFixed(1).padStart(8)} ${x(r.del, r.empty.del)}    ${r.conn.toFixed(3).padStart(10)} ${x(r.conn, r.empty.conn)}`,
  );
for (const r of masq)
  console.log(
    `${"masquerade".padEnd(12)} ${String(r.n).padStart(5)}  ${r.add.toFixed(1).padStart(8)} ${x(r.add, r.empty.add)}    ${r.del.toFixed(1).padStart(8)} ${x(r.del, r.empty.del)}   (bridge ADD/DEL, ipMasq nftables)`,
  );
const fills: Record<string, FillSegment[]> = {};
for (const [b, segs] of fillMs) {
  fills[b] = segs;
  let total = 0;
  let from = 0;
  const parts = segs.map((seg) => {
    total += seg.ms;
    const calls = seg.to - from;
    from = seg.to;
    const cpu = (x: number | undefined): string => (x === undefined ? "" : (x / calls).toFixed(1));
    const per =
      seg.pluginsCpuMs === undefined
        ? ""
        : `; CPU per call ${cpu(seg.pluginsCpuMs)} ms plugin, ${cpu(seg.driverCpuMs)} ms driver`;
    const daemon =
      seg.daemonCpuMs === undefined
        ? ""
        : ` + ${cpu(seg.daemonCpuMs)} ms daemon, ${seg.served} served, ${seg.refused} refused`;
    return `${(total / 1000).toFixed(1)} s to ${seg.to}${per}${daemon}`;
  });
  const how = b === "nftables" && FILL_MODE === "resident" ? "resident daemon" : "plugin";
  console.log(`fill through the ${how}, ${b}: ${parts.join(", ")} (${FILL_PARALLEL} at a time)`);
}
// Figures move with what else runs: the load says how quiet the machine was.
console.log(`load average at the end: ${loadAverage()}`);
saveResults(
  "portmap",
  {
    mappings: NS,
    rounds: ROUNDS,
    connections: CONNS,
    fillParallel: FILL_PARALLEL,
    fillMode: FILL_MODE,
    fills,
  },
  [...all, ...masq],
);
const last = NS.at(-1)!;
const at = (b: Backend): Row | undefined => all.find((r) => r.backend === b && r.n === last);
const nft = at("nftables");
const ipt = at("iptables");
const up = at("upstream");
if (nft && ipt && up)
  console.log(
    `\nat N=${last}: upstream/nftables ADD ${(up.add / nft.add).toFixed(1)}x, DEL ${(up.del / nft.del).toFixed(1)}x, connect ${(up.conn / nft.conn).toFixed(2)}x; ` +
      `our iptables/nftables ADD ${(ipt.add / nft.add).toFixed(1)}x, DEL ${(ipt.del / nft.del).toFixed(1)}x, connect ${(ipt.conn / nft.conn).toFixed(2)}x`,
  );
