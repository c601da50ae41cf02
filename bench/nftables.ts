/**
 * nftables library benchmark, in a throwaway network namespace (root needed). In one run:
 * applying one transaction of 10,000 rules and one of 50,000 map elements, and listing them back;
 * each against a baseline measured in the same run (raw `nft -f` of the same pre-rendered text,
 * raw `nft -j list` without parsing), with the share of time spent in the library itself
 * (building and rendering the transaction, parsing nft's output).
 *
 * Run with `npm run bench` (or `node --expose-gc --import tsx bench/nftables.ts`). Environment:
 * BENCH_RULES, BENCH_ELEMENTS, BENCH_ROUNDS override the sizes and the rounds per figure.
 */
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { NFTables, concat, address, port, type Transaction } from "../src/nftables/index.js";
import { execNft } from "../src/nftables/exec.js";
import { elementsFromJson, parseListing, ruleFromJson } from "../src/nftables/json.js";
import { parseRuleTexts } from "../src/nftables/nftables.js";

const RULES = Number(process.env["BENCH_RULES"] ?? 10_000);
const ELEMENTS = Number(process.env["BENCH_ELEMENTS"] ?? 50_000);
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 3);
const NETNS = `cni-nft-bench-${process.pid}`;
const NETNS_PATH = `/var/run/netns/${NETNS}`;
const exec = { netns: NETNS_PATH };

function ip4(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Collects garbage left by the previous step (with --expose-gc), so each step pays only for its own. */
function settle(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

function time<T>(fn: () => T): [T, number] {
  settle();
  const t0 = performance.now();
  const out = fn();
  return [out, performance.now() - t0];
}

async function timeAsync<T>(fn: () => Promise<T>): Promise<[T, number]> {
  settle();
  const t0 = performance.now();
  const out = await fn();
  return [out, performance.now() - t0];
}

async function nft(args: string[], stdin?: string): Promise<string> {
  const res = await execNft(args, exec, stdin);
  if (res.code !== 0) throw new Error(`nft ${args.join(" ")}: ${res.stderr.slice(0, 500)}`);
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
  /** End to end through the library. */
  total: number;
  /** Of which in the library: render(), or parsing nft's output. */
  library: number;
  /** The nft-only baseline. */
  baseline: number;
  /** Building the transaction (add() calls with their validation, and the rule helpers). */
  build?: number;
  detail: string;
}

async function benchApply(what: string, build: (n: NFTables) => Transaction, table: string): Promise<Row> {
  const n = new NFTables({ family: "inet", table, netns: NETNS_PATH });
  const totals: number[] = [];
  const builds: number[] = [];
  const renders: number[] = [];
  const baselines: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // Baseline: the same text, pre-rendered, straight into nft.
    const text = build(n).render().text;
    const [, base] = await timeAsync(() => nft(["-f", "-"], text));
    baselines.push(base);
    await nft(["delete", "table", "inet", table]);

    const [tx, tBuild] = time(() => build(n));
    const [, tRender] = time(() => tx.render());
    const [, tRun] = await timeAsync(() => n.run(tx));
    builds.push(tBuild);
    renders.push(tRender);
    totals.push(tRun);
    await nft(["delete", "table", "inet", table]);
  }
  return {
    what,
    total: median(totals),
    library: median(renders),
    baseline: median(baselines),
    build: median(builds),
    detail: "render()",
  };
}

async function benchListRules(table: string, withText: boolean): Promise<Row> {
  const n = new NFTables({ family: "inet", table, netns: NETNS_PATH });
  const totals: number[] = [];
  const parses: number[] = [];
  const baselines: number[] = [];
  let count = 0;
  for (let r = 0; r < ROUNDS; r++) {
    // The same nft runs as listRules makes (both at once with text), without parsing.
    const [[json, text], base] = await timeAsync(() =>
      Promise.all([
        nft(["--json", "list", "chain", "inet", table, "c"]),
        withText ? nft(["-a", "list", "chain", "inet", table, "c"]) : "",
      ]),
    );
    baselines.push(base);
    const [, parse] = time(() => {
      const rules = parseListing(json)
        .filter(([k]) => k === "rule")
        .map(([, b]) => ruleFromJson(b));
      if (withText) {
        const texts = parseRuleTexts(text);
        for (const rule of rules) rule.rule = texts.get(rule.handle ?? -1) ?? "";
      }
      return rules;
    });
    parses.push(parse);
    const [rules, total] = await timeAsync(() => n.listRules("c", { text: withText }));
    totals.push(total);
    count = rules.length;
    if (withText && !rules.every((x) => x.rule.startsWith("ip saddr ")))
      throw new Error("listRules returned rules without text");
  }
  if (count !== RULES) throw new Error(`listed ${count} rules, want ${RULES}`);
  return {
    what: `list ${RULES} rules${withText ? " with text" : ""}`,
    total: median(totals),
    library: median(parses),
    baseline: median(baselines),
    detail: withText ? "JSON + text parse" : "JSON parse",
  };
}

async function benchListElements(table: string): Promise<Row> {
  const n = new NFTables({ family: "inet", table, netns: NETNS_PATH });
  const totals: number[] = [];
  const parses: number[] = [];
  const baselines: number[] = [];
  let count = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const [json, base] = await timeAsync(() => nft(["--json", "list", "map", "inet", table, "m"]));
    baselines.push(base);
    const [, parse] = time(() => {
      const body = parseListing(json).find(([k]) => k === "map")?.[1];
      return body ? elementsFromJson("map", "m", body) : [];
    });
    parses.push(parse);
    const [elems, total] = await timeAsync(() => n.listElements("map", "m"));
    totals.push(total);
    count = elems.length;
  }
  if (count !== ELEMENTS) throw new Error(`listed ${count} elements, want ${ELEMENTS}`);
  return {
    what: `list ${ELEMENTS} map elements`,
    total: median(totals),
    library: median(parses),
    baseline: median(baselines),
    detail: "JSON parse",
  };
}

function print(rows: Row[]): void {
  const head = [
    "operation",
    "total ms",
    "library ms",
    "library %",
    "nft-only ms",
    "total/nft",
    "library part",
    "tx build ms",
  ];
  const cells = rows.map((r) => [
    r.what,
    r.total.toFixed(0),
    r.library.toFixed(1),
    `${((100 * r.library) / r.total).toFixed(1)}%`,
    r.baseline.toFixed(0),
    `${(r.total / r.baseline).toFixed(2)}x`,
    r.detail,
    r.build === undefined
      ? ""
      : `${r.build.toFixed(0)} (${((100 * r.build) / (r.build + r.total)).toFixed(0)}%)`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]): string =>
    c.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join("  ");
  console.log(line(head));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const c of cells) console.log(line(c));
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
    console.log(
      `nftables library benchmark: ${version}, node ${process.version}, median of ${ROUNDS} rounds, namespace ${NETNS}`,
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
    console.log(
      "\ntotal: run(tx) or the list call, end to end; library: render() or parsing nft's output (JSON.parse" +
        "\nincluded); nft-only: raw nft -f of the pre-rendered text, or raw nft -j list (and -a list) unparsed;" +
        "\ntx build: the caller's add() calls with their validation, before run(); % of build + total.",
    );
    const worst = rows.reduce((a, b) => (a.library / a.total > b.library / b.total ? a : b));
    const share = (100 * worst.library) / worst.total;
    console.log(
      `\nlargest library share: ${share.toFixed(1)}% (${worst.what}); target < 10%: ${share < 10 ? "ok" : "OVER"}`,
    );
  } finally {
    cleanup();
  }
}

await main();
