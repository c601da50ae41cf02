/**
 * nftables library benchmark, in a throwaway network namespace (root needed). In one run:
 * applying one transaction of 10,000 rules and one of 50,000 map elements, and listing them back;
 * each against a baseline measured in the same run (raw `nft -f` of the same pre-rendered text,
 * raw `nft -j list` without parsing), with the share of time spent in the library itself
 * (rendering the transaction, parsing nft's output).
 *
 * Times are wall clock and CPU: CPU time (this process, plus nft's own from /proc/self/stat's
 * cutime/cstime of reaped children) barely moves when other work shares the machine, so the
 * CPU share is the figure to trust on a busy host.
 *
 * Run with `npm run bench` (or `node --expose-gc --import tsx bench/nftables.ts`). Environment:
 * BENCH_RULES, BENCH_ELEMENTS, BENCH_ROUNDS override the sizes and the rounds per figure.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { NFTables, concat, address, port, type Transaction } from "../src/nftables/index.js";
import { runChecked, systemRunner } from "../src/process/index.js";
import { elementsOfListing, parseRuleTexts, rulesOfListing } from "../src/nftables/nftables.js";
import { benchArgs } from "./lib/args.js";

benchArgs({
  usage: `usage: node --expose-gc --import tsx bench/nftables.ts
Environment: BENCH_RULES (default 10000), BENCH_ELEMENTS (default 50000), BENCH_ROUNDS (rounds
per figure, default 5).`,
});
const RULES = Number(process.env["BENCH_RULES"] ?? 10_000);
const ELEMENTS = Number(process.env["BENCH_ELEMENTS"] ?? 50_000);
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 5);
const NETNS = `cni-nft-bench-${process.pid}`;
const NETNS_PATH = `/var/run/netns/${NETNS}`;
const exec = { netns: NETNS_PATH };
/** USER_HZ: the unit of cutime/cstime in /proc/self/stat. */
const CLOCK_TICK_MS = 1000 / Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim() || 100);

function ip4(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Wall and CPU milliseconds of one step; `cpu` counts this process and the nft runs it waited for. */
interface Cost {
  wall: number;
  cpu: number;
}

function childrenCpuMs(): number {
  // Fields after the command name: cutime and cstime are the 14th and 15th.
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) * CLOCK_TICK_MS;
}

function sample(): Cost {
  const u = process.cpuUsage();
  return { wall: performance.now(), cpu: (u.user + u.system) / 1000 + childrenCpuMs() };
}

function since(t0: Cost): Cost {
  const t1 = sample();
  return { wall: t1.wall - t0.wall, cpu: t1.cpu - t0.cpu };
}

/** Collects garbage left by the previous step (with --expose-gc), so each step pays only for its own. */
function settle(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function measure<T>(fn: () => T): [T, Cost] {
  settle();
  const t0 = sample();
  const out = fn();
  return [out, since(t0)];
}

async function measureAsync<T>(fn: () => Promise<T>): Promise<[T, Cost]> {
  settle();
  const t0 = sample();
  const out = await fn();
  return [out, since(t0)];
}

async function nft(args: string[], stdin?: string): Promise<string> {
  const res = await runChecked(systemRunner, { argv: ["nft", ...args], netns: exec.netns, stdin });
  return res.stdout;
}

function buildRules(n: NFTables): Transaction {
  const tx = n.newTransaction().add({ kind: "table" }).add({ kind: "chain", name: "c" });
  for (let i = 0; i < RULES; i++)
    tx.add({
      kind: "rule",
      chain: "c",
      rule: concat("ip saddr", address(ip4(i)), "tcp dport", port(1024 + (i % 60000)), "counter accept"),
      comment: `rule ${i}`,
    });
  return tx;
}

function buildElements(n: NFTables): Transaction {
  const tx = n
    .newTransaction()
    .add({ kind: "table" })
    .add({ kind: "map", name: "m", type: "ipv4_addr . inet_service : ipv4_addr . inet_service" });
  for (let i = 0; i < ELEMENTS; i++)
    tx.add({
      kind: "element",
      map: "m",
      key: [ip4(i), String(1024 + (i % 60000))],
      value: [ip4(i + 1_000_000), "8080"],
    });
  return tx;
}

interface Row {
  what: string;
  /** End to end through the library: run(tx), or the list call. */
  total: Cost;
  /** Of which in the library: render(), or parsing nft's output. */
  library: Cost;
  /** The nft-only baseline. */
  baseline: Cost;
  /** Building the transaction (add() calls with their validation, and the rule helpers). */
  build?: Cost;
  detail: string;
}

/** Per-field medians of several costs. */
function med(costs: Cost[]): Cost {
  return { wall: median(costs.map((c) => c.wall)), cpu: median(costs.map((c) => c.cpu)) };
}

async function benchApply(what: string, build: (n: NFTables) => Transaction, table: string): Promise<Row> {
  const n = new NFTables({ family: "inet", table, netns: NETNS_PATH });
  const totals: Cost[] = [];
  const builds: Cost[] = [];
  const renders: Cost[] = [];
  const baselines: Cost[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Baseline: the same text, pre-rendered, straight into nft.
    const text = build(n).render().text;
    baselines.push((await measureAsync(() => nft(["-f", "-"], text)))[1]);
    await nft(["delete", "table", "inet", table]);

    const [tx, tBuild] = measure(() => build(n));
    renders.push(measure(() => tx.render())[1]);
    totals.push((await measureAsync(() => n.run(tx)))[1]);
    builds.push(tBuild);
    await nft(["delete", "table", "inet", table]);
  }
  return {
    what,
    total: med(totals),
    library: med(renders),
    baseline: med(baselines),
    build: med(builds),
    detail: "render()",
  };
}

async function benchListRules(table: string, withText: boolean): Promise<Row> {
  const n = new NFTables({ family: "inet", table, netns: NETNS_PATH });
  const totals: Cost[] = [];
  const parses: Cost[] = [];
  const jsonParses: Cost[] = [];
  const baselines: Cost[] = [];
  let count = 0;
  for (let r = 0; r < ROUNDS; r++) {
    // The same nft runs as listRules makes (both at once with text), without parsing.
    const [[json, text], base] = await measureAsync(() =>
      Promise.all([
        nft(["--json", "list", "chain", "inet", table, "c"]),
        withText ? nft(["-a", "list", "chain", "inet", table, "c"]) : "",
      ]),
    );
    baselines.push(base);
    jsonParses.push(measure(() => JSON.parse(json) as unknown)[1]);
    const [, parse] = measure(() => {
      const rules = rulesOfListing(json);
      if (withText) {
        const texts = parseRuleTexts(text);
        for (const rule of rules) rule.rule = texts.get(rule.handle ?? -1) ?? "";
      }
      return rules;
    });
    parses.push(parse);
    const [rules, total] = await measureAsync(() => n.listRules("c", { text: withText }));
    totals.push(total);
    count = rules.length;
    if (withText && !rules.every((x) => x.rule.startsWith("ip saddr ")))
      throw new Error("listRules returned rules without text");
  }
  if (count !== RULES) throw new Error(`listed ${count} rules, want ${RULES}`);
  return {
    what: `list ${RULES} rules${withText ? " with text" : ""}`,
    total: med(totals),
    library: med(parses),
    baseline: med(baselines),
    detail: `JSON.parse alone ${med(jsonParses).wall.toFixed(0)}${withText ? ", + text" : ""}`,
  };
}

async function benchListElements(table: string): Promise<Row> {
  const n = new NFTables({ family: "inet", table, netns: NETNS_PATH });
  const totals: Cost[] = [];
  const parses: Cost[] = [];
  const jsonParses: Cost[] = [];
  const baselines: Cost[] = [];
  let count = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const [json, base] = await measureAsync(() => nft(["--json", "list", "map", "inet", table, "m"]));
    baselines.push(base);
    jsonParses.push(measure(() => JSON.parse(json) as unknown)[1]);
    const [, parse] = measure(() => elementsOfListing(json, "map", "m"));
    parses.push(parse);
    const [elems, total] = await measureAsync(() => n.listElements("map", "m"));
    totals.push(total);
    count = elems.length;
  }
  if (count !== ELEMENTS) throw new Error(`listed ${count} elements, want ${ELEMENTS}`);
  return {
    what: `list ${ELEMENTS} map elements`,
    total: med(totals),
    library: med(parses),
    baseline: med(baselines),
    detail: `JSON.parse alone ${med(jsonParses).wall.toFixed(0)}`,
  };
}

const pct = (part: number, whole: number): string => `${((100 * part) / whole).toFixed(1)}%`;

function print(rows: Row[]): void {
  const head = [
    "operation",
    "total ms",
    "nft-only ms",
    "total/nft",
    "library ms",
    "library %",
    "lib CPU %",
    "library part",
    "tx build ms",
  ];
  const cells = rows.map((r) => [
    r.what,
    r.total.wall.toFixed(0),
    r.baseline.wall.toFixed(0),
    `${(r.total.wall / r.baseline.wall).toFixed(2)}x`,
    r.library.wall.toFixed(1),
    pct(r.library.wall, r.total.wall),
    pct(r.library.cpu, r.total.cpu),
    r.detail,
    r.build === undefined ? "" : r.build.wall.toFixed(0),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string =>
    c.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join("  ");
  console.log(line(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const c of cells) console.log(line(c));
  console.log(
    "\ntotal: run(tx) or the list call, end to end, wall clock. nft-only: raw nft -f of the same pre-rendered\n" +
      "text, or raw nft -j list (and -a list, at once) without parsing. library: render() or parsing nft's\n" +
      "output (V8's JSON.parse included, also timed alone), as wall and as CPU share of the total (this\n" +
      "process + nft). tx build: the caller's add() calls with their validation, before run(), not in\n" +
      "the total.",
  );
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error("bench/nftables.ts needs root (it makes a network namespace)");
    process.exitCode = 1;
    return;
  }
  execFileSync("ip", ["netns", "add", NETNS]);
  const cleanup = (): void => {
    try {
      execFileSync("ip", ["netns", "del", NETNS], { stdio: "ignore" });
    } catch {
      /* already gone */
    }
  };
  process.once("SIGINT", () => {
    cleanup();
    process.exit(130);
  });
  try {
    const version = (await nft(["--version"])).trim();
    const load = (): string => loadavg()[0]!.toFixed(1);
    console.log(
      `nftables library benchmark: ${version}, node ${process.version}, median of ${ROUNDS} rounds, ` +
        `namespace ${NETNS}, load average ${load()}`,
    );
    const rows: Row[] = [];
    rows.push(await benchApply(`apply ${RULES} rules`, buildRules, "bench_rules"));
    rows.push(await benchApply(`apply ${ELEMENTS} map elements`, buildElements, "bench_elems"));
    // Listing: leave one copy of each in place.
    const nr = new NFTables({ family: "inet", table: "bench_rules", netns: NETNS_PATH });
    await nr.run(buildRules(nr));
    const ne = new NFTables({ family: "inet", table: "bench_elems", netns: NETNS_PATH });
    await ne.run(buildElements(ne));
    rows.push(await benchListRules("bench_rules", false));
    rows.push(await benchListRules("bench_rules", true));
    rows.push(await benchListElements("bench_elems"));
    print(rows);
    const share = (r: Row): number => (100 * r.library.cpu) / r.total.cpu;
    const worst = rows.reduce((a, b) => (share(a) > share(b) ? a : b));
    console.log(
      `\nlargest library share (CPU): ${share(worst).toFixed(1)}% (${worst.what}); target < 10%: ` +
        `${share(worst) < 10 ? "ok" : "OVER"}; load average now ${load()}`,
    );
  } finally {
    cleanup();
  }
}

await main();
