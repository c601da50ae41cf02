/**
 * portmap benchmark (root; throwaway namespaces). For our nftables backend, our iptables backend
 * and upstream 1.1.1's iptables portmap, with N = 0, 100, 1,000 and 5,000 mappings already in
 * place: the wall time of one more ADD and its DEL (median of a few), and the time to open a new
 * TCP connection from outside through the mapped port (median of many). Ratios are against the
 * same backend at N = 0. The N existing mappings are written in bulk in the exact form each
 * backend writes them (one nft run / one iptables-restore), not by N plugin runs.
 *
 * Run with `npm run bench` or `node --import tsx bench/portmap.ts`. Environment: BENCH_PORTMAP_N
 * (comma list, default 0,100,1000,5000), BENCH_PORTMAP_ROUNDS (ADD/DEL pairs, default 5),
 * BENCH_PORTMAP_CONNS (connections per figure, default 200).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { NFTables } from "../src/nftables/index.js";
import { NFT_TABLE, desired } from "../plugins/meta/portmap/portmap_nftables.js";
import { containerRules, dnatChainName } from "../plugins/meta/portmap/portmap_iptables.js";
import type { PortMapConf } from "../plugins/meta/portmap/config.js";
import { saveResults } from "./lib/results.js";

const NS = (process.env["BENCH_PORTMAP_N"] ?? "0,100,1000,5000").split(",").map(Number);
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

type Backend = "nftables" | "iptables" | "upstream";

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

function conf(containerId: string, address: string, hostPort: number): PortMapConf {
  return {
    network: "benchnet",
    containerId,
    ifname: "eth0",
    snat: true,
    masqAll: false,
    markMasqBit: 13,
    conditionsV4: [],
    conditionsV6: [],
    mappings: [{ hostPort, containerPort: 80, protocol: "tcp" }],
    containers: [{ family: 4, address, subnet: "10.99.0.0/16" }],
  };
}
const fillerAddr = (i: number): string => `10.99.${1 + (i >> 8)}.${i & 255}`;

/** Adds mappings from..to-1 as the backend itself writes them, in one run. */
async function populate(b: Backend, host: string, from: number, to: number): Promise<void> {
  if (to <= from) return;
  if (b === "nftables") {
    const nft = new NFTables({ family: "inet", table: NFT_TABLE, netns: `/var/run/netns/${host}` });
    const tx = nft.newTransaction();
    for (let i = from; i < to; i++)
      for (const e of desired(conf(`fill${i}`, fillerAddr(i), 10000 + i)).elements) tx.add(e);
    await nft.run(tx);
    return;
  }
  const lines: string[] = [];
  for (let i = from; i < to; i++) {
    const c = conf(`fill${i}`, fillerAddr(i), 10000 + i);
    const { rules, entries } = containerRules(c, 4, fillerAddr(i), "10.99.0.0/16");
    lines.push(`:${dnatChainName(c.network, c.containerId)} - [0:0]`, ...rules, ...entries);
  }
  await sh(inNs(host, ["iptables-restore", "-w", "--noflush"]), `*nat\n${lines.join("\n")}\nCOMMIT\n`);
}

async function plugin(b: Backend, host: string, verb: string): Promise<number> {
  const bin = b === "upstream" ? UPSTREAM_BIN : OUR_BIN;
  const stdin = JSON.stringify({
    cniVersion: "1.0.0",
    name: "benchnet",
    type: "portmap",
    ...(b === "upstream" ? {} : { backend: b }),
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
}

async function benchBackend(b: Backend): Promise<Row[]> {
  const t = await topology(b.slice(0, 3));
  const rows: Row[] = [];
  try {
    let have = 0;
    // Shared chains/table first, as a real host would have them.
    await plugin(b, t.host, "ADD");
    await plugin(b, t.host, "DEL");
    for (const n of NS) {
      await populate(b, t.host, have, n);
      have = Math.max(have, n);
      const adds: number[] = [];
      const dels: number[] = [];
      const rounds = n >= 5000 && b !== "nftables" ? Math.min(ROUNDS, 3) : ROUNDS;
      for (let i = 0; i < rounds; i++) {
        adds.push(await plugin(b, t.host, "ADD"));
        dels.push(await plugin(b, t.host, "DEL"));
      }
      await plugin(b, t.host, "ADD");
      await connectTime(t.out); // warm up (ARP, caches)
      const conn = await connectTime(t.out);
      await plugin(b, t.host, "DEL");
      rows.push({ backend: b, n, add: median(adds), del: median(dels), conn });
      console.log(
        `  ${b.padEnd(9)} N=${String(n).padStart(5)}  ADD ${median(adds).toFixed(1)} ms  DEL ${median(dels).toFixed(1)} ms  connect ${conn.toFixed(3)} ms`,
      );
    }
  } finally {
    t.server();
    for (const ns of [t.host, t.out, t.ctr]) await run(["ip", "netns", "del", ns]);
  }
  return rows;
}

const all: Row[] = [];
console.log(
  `portmap benchmark: N = ${NS.join(", ")}; ${ROUNDS} ADD/DEL pairs; median of ${CONNS} connections`,
);
for (const b of ["nftables", "iptables", "upstream"] as const) all.push(...(await benchBackend(b)));

console.log("\nbackend     N      ADD ms  (xN=0)   DEL ms  (xN=0)   connect ms  (xN=0)");
for (const r of all) {
  const base = all.find((x) => x.backend === r.backend && x.n === NS[0])!;
  const x = (a: number, b0: number): string => `(${(a / b0).toFixed(2)}x)`.padStart(8);
  console.log(
    `${r.backend.padEnd(9)} ${String(r.n).padStart(5)}  ${r.add.toFixed(1).padStart(8)} ${x(r.add, base.add)} ${r.del.toFixed(1).padStart(8)} ${x(r.del, base.del)} ${r.conn.toFixed(3).padStart(10)} ${x(r.conn, base.conn)}`,
  );
}
saveResults("portmap", { mappings: NS, rounds: ROUNDS, connections: CONNS }, all);
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
