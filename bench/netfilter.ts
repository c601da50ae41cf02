/**
 * Netfilter manager benchmark: partial sync against a full re-apply, in one run, on both
 * backends, in a throwaway network namespace (root needed). The ruleset: BENCH_RULES rules in
 * chains of 100 (a security group chain per port, as Neutron writes them, jumped to from
 * FORWARD), a hash:ip set and a hash:net set of BENCH_MEMBERS members each.
 *
 * Figures per backend (median of BENCH_ROUNDS, wall and CPU milliseconds, CPU counting nft,
 * iptables-restore and ipset as children):
 *   full       the whole state into an empty kernel (what a manager without partial sync pays
 *              on every change: kube-proxy's old full resync)
 *   restart    a new manager over the loaded kernel: state read once, nothing sent
 *   1 rule     one rule replaced among them
 *   1 member   one member replaced in the hash:ip set, and in the hash:net set (an nft interval
 *              set: nft 1.0.6 reads the whole set back on every change of it)
 *   empty      one rule replaced on an empty ruleset (a chain of one rule): the floor
 * and setMembers' own cost (canonical members, overlap check) for the big set.
 *
 * Run with `npm run bench` (or `node --expose-gc --import tsx bench/netfilter.ts`).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { createNetfilterManager, type NetfilterManager } from "../src/netfilter/index.js";
import { NFTables } from "../src/nftables/index.js";
import { benchArgs } from "./lib/args.js";

benchArgs({
  usage: `usage: node --expose-gc --import tsx bench/netfilter.ts
Environment: BENCH_RULES (default 10000), BENCH_MEMBERS (members of each set, default 100000),
BENCH_ROUNDS (rounds per figure, default 5).`,
});
const RULES = Number(process.env["BENCH_RULES"] ?? 10_000);
const MEMBERS = Number(process.env["BENCH_MEMBERS"] ?? 100_000);
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 5);
const PER_CHAIN = 100;
const NETNS = `cni-nft-bench-nf-${process.pid}`;
const NETNS_PATH = `/var/run/netns/${NETNS}`;
const CLOCK_TICK_MS = 1000 / Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim() || 100);

interface Cost {
  wall: number;
  cpu: number;
}
function childrenCpuMs(): number {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) * CLOCK_TICK_MS;
}
function sample(): Cost {
  const u = process.cpuUsage();
  return { wall: performance.now(), cpu: (u.user + u.system) / 1000 + childrenCpuMs() };
}
async function timed(f: () => Promise<unknown>): Promise<Cost> {
  const t0 = sample();
  await f();
  const t1 = sample();
  return { wall: t1.wall - t0.wall, cpu: t1.cpu - t0.cpu };
}
const median = (xs: Cost[]): Cost => {
  const m = (k: keyof Cost): number =>
    [...xs.map((x) => x[k])].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { wall: m("wall"), cpu: m("cpu") };
};
const ip4 = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const members = (): string[] => Array.from({ length: MEMBERS }, (_, i) => ip4(i));
const nets = (): string[] =>
  Array.from({ length: MEMBERS }, (_, i) => `${ip4(i * 4 + ((11 << 24) >>> 0) - (10 << 24))}/30`);

type Backend = "nftables" | "iptables";
const make = (backend: Backend): NetfilterManager =>
  createNetfilterManager({
    owner: "bench",
    backend,
    netns: NETNS_PATH,
    ipv6: false,
    nft: new NFTables({ family: "ip", table: "bench", netns: NETNS_PATH }),
  });

/** The big state: chains of PER_CHAIN rules, the set used by one rule of each chain. */
function load(m: NetfilterManager, rules: number): void {
  m.setMembers("clients", 4, members(), "hash:ip");
  m.setMembers("nets", 4, nets(), "hash:net");
  const f = m.ipv4.filter;
  for (let c = 0; c * PER_CHAIN < rules; c++) {
    const chain = `sg-${c}`;
    f.addChain(chain);
    f.addRule("FORWARD", `-o tap${c} -j $${chain}`);
    for (let r = 0; r < Math.min(PER_CHAIN, rules - c * PER_CHAIN); r++)
      f.addRule(
        chain,
        r === 0
          ? "-m set --match-set clients src -j RETURN"
          : r === 1
            ? "-m set --match-set nets src -j RETURN"
            : `-p tcp -m tcp --dport ${1000 + r} -j RETURN`,
      );
  }
}

async function bench(backend: Backend): Promise<Record<string, Cost>> {
  const out: Record<string, Cost> = {};
  const full: Cost[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    await make(backend).destroy();
    const m = make(backend);
    load(m, RULES);
    full.push(await timed(() => m.apply()));
  }
  out["full"] = median(full);
  const restart: Cost[] = [];
  let m = make(backend);
  for (let i = 0; i < ROUNDS; i++) {
    m = make(backend);
    load(m, RULES);
    restart.push(await timed(() => m.apply()));
  }
  out["restart"] = median(restart);
  const oneRule: Cost[] = [];
  const chain = `sg-${Math.floor(RULES / PER_CHAIN / 2)}`;
  for (let i = 0; i < ROUNDS; i++) {
    m.ipv4.filter.removeRule(chain, `-p tcp -m tcp --dport ${1000 + 50 + i} -j RETURN`);
    m.ipv4.filter.addRule(chain, `-p udp -m udp --dport ${2000 + i} -j RETURN`);
    oneRule.push(await timed(() => m.apply()));
  }
  out["1 rule"] = median(oneRule);
  for (const [set, type, all] of [
    ["clients", "hash:ip", members],
    ["nets", "hash:net", nets],
  ] as const) {
    const oneMember: Cost[] = [];
    const setCost: Cost[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const list = all();
      list[i] = `172.16.0.${i + 1}`;
      setCost.push(await timed(() => Promise.resolve(m.setMembers(set, 4, list, type))));
      oneMember.push(await timed(() => m.apply()));
    }
    out[`1 ${type}`] = median(oneMember);
    out[`set ${type}`] = median(setCost);
  }
  await m.destroy();
  const empty: Cost[] = [];
  const small = make(backend);
  small.ipv4.filter.addChain("sg-0");
  small.ipv4.filter.addRule("sg-0", "-j RETURN");
  await small.apply();
  for (let i = 0; i < ROUNDS; i++) {
    small.ipv4.filter.emptyChain("sg-0");
    small.ipv4.filter.addRule("sg-0", `-p tcp -m tcp --dport ${3000 + i} -j RETURN`);
    empty.push(await timed(() => small.apply()));
  }
  out["empty"] = median(empty);
  await small.destroy();
  return out;
}

execFileSync("ip", ["netns", "add", NETNS]);
try {
  console.log(
    `netfilter manager: ${RULES} rules in chains of ${PER_CHAIN}, a hash:ip and a hash:net set of ${MEMBERS} members each; median of ${ROUNDS}`,
  );
  const fmt = (c: Cost | undefined): string =>
    c ? `${c.wall.toFixed(0).padStart(7)} ms wall ${c.cpu.toFixed(0).padStart(7)} ms cpu` : "";
  for (const backend of ["nftables", "iptables"] as const) {
    const r = await bench(backend);
    console.log(`\n${backend}`);
    const labels: Record<string, string> = {
      full: "full apply",
      restart: "restart (read once, nothing sent)",
      "1 rule": "1 rule of them changed",
      "1 hash:ip": "1 member of the hash:ip set",
      "1 hash:net": "1 member of the hash:net set",
      empty: "1 rule on an empty ruleset",
      "set hash:ip": "setMembers (in process), hash:ip",
      "set hash:net": "setMembers (in process), hash:net",
    };
    for (const [k, label] of Object.entries(labels)) console.log(`  ${label.padEnd(36)}${fmt(r[k])}`);
    const ratio = (k: string): string => `${(r["full"]!.wall / r[k]!.wall).toFixed(0)}x`;
    console.log(
      `  partial vs full re-apply: 1 rule ${ratio("1 rule")} faster, 1 hash:ip member ${ratio("1 hash:ip")}, 1 hash:net member ${ratio("1 hash:net")}; 1 rule vs empty ruleset: ${(r["1 rule"]!.wall / r["empty"]!.wall).toFixed(1)}x`,
    );
  }
} finally {
  execFileSync("ip", ["netns", "del", NETNS]);
}
