/**
 * podman's chain (bridge -> portmap -> firewall -> tuning, VERSION before each plugin's ADD and
 * DEL, prevResult threaded as libcni does) with cni-nft's plugins against upstream's Go plugins,
 * in one run on one machine: upstream 1.1.1 (/usr/lib/cni, iptables), cni-nft on its iptables
 * and on its nftables backends, and upstream's current plugins with their nftables backends when
 * their directory is given (`--upstream-current DIR`; nothing of upstream is in this repository).
 *
 * Every flavour gets a host of its own (a throwaway network namespace) and a driver inside it for
 * the whole run (bench/lib/chain-host.ts), so plugins are started the way a runtime starts them:
 * no `ip netns exec` per call. The flavours are interleaved: every figure is taken in rounds, each
 * round timing one of every flavour in an order rotated by one per round, so a load that comes
 * and goes meets all of them alike. The chain is timed on an empty host and again with each
 * population of containers already attached through the same chain (each with its own port
 * mapping): every host is filled to the population first (`--parallel` chains at a time), then
 * the rounds run. The bench runs in a /run of its own (bench/lib/private-run.ts): the plugins'
 * lock files there are the run's, not the machine's (`--shared-run` to keep the machine's).
 * Printed per flavour: medians, ratios against upstream 1.1.1 from the same run, the processes
 * one chain ADD and one chain DEL start (strace; sh fronts, VERSION calls and plugins included)
 * and the peak memory of one bridge ADD process (GNU time).
 *
 *   node --import tsx bench/chain.ts [--runs 15] [--populations 0,200,2000] [--parallel 4]
 *                                    [--upstream-current /tmp/upstream-cni/bin] [--only KEY,...]
 *                                    [--baseline OTHER/dist/compiled] [--shared-run]
 *
 * --baseline adds the nftables resident flavour of another build of the compiled plugins (a copy
 * of its dist/compiled is enough), "cni-nft nftables, resident, baseline": a change to the
 * client's path against the build before it, in the same run. --only takes flavours' keys
 * (`--help` lists them; bench/lib/chain-flavours.ts), exactly: labels contain commas.
 *   node --import tsx bench/chain.ts [runs] [population]          (the old form: 0 and that population)
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchArgs, intArg, intListArg, usageError } from "./lib/args.js";
import { saveResults } from "./lib/results.js";
import { removeNamespaces, removeNamespacesOnSignals } from "./lib/namespaces.js";
import { privateRun, SHARED_RUN_OPTION, SHARED_RUN_USAGE } from "./lib/private-run.js";
import { chooseFlavours, flavourKeysUsage, flavours } from "./lib/chain-flavours.js";
import type { Flavour } from "./lib/chain-run.js";
import { FlavourHost, rounds } from "./lib/chain-hosts.js";
import { collected, figuresOf, printTable, type Collected } from "./lib/chain-table.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OURS = join(ROOT, "dist", existsSync(join(ROOT, "dist/compiled/cni-nft-plugins")) ? "compiled" : "bin");
/** Every namespace of this run starts with it: the end of the run and a signal remove them all. */
const PREFIX = `cnb${process.pid}`;

interface Params {
  runs: number;
  populations: number[];
  parallel: number;
}

const USAGE = `usage: node --import tsx bench/chain.ts [--runs 15] [--populations 0,200,2000] [--parallel 4]
                                        [--upstream-current DIR] [--only KEY,...] [--shared-run]
       node --import tsx bench/chain.ts [runs] [population]   (the old form: 0 and that population)
  --runs N               rounds per figure (default 15): each times every flavour once, in turn
  --populations LIST     containers already attached per figure (0 is always measured)
  --parallel N           chains at a time while filling (default 4)
  --upstream-current DIR upstream's current plugins (nftables backends) as one more flavour
  --only KEY,...         only these flavours, by key:
${flavourKeysUsage("                           ")}
  --baseline DIR         another build's dist/compiled, as one more resident flavour
${SHARED_RUN_USAGE}`;

const seconds = (t0: number): string => `${((Date.now() - t0) / 1000).toFixed(0)} s`;

/** Every figure of the run, flavours interleaved; what each flavour's rounds gave. */
async function measure(hosts: FlavourHost[], p: Params): Promise<Map<FlavourHost, Collected>> {
  const got = new Map(hosts.map((h) => [h, collected()]));
  const of = (h: FlavourHost): Collected => got.get(h)!;
  let t0 = Date.now();
  await rounds(hosts, p.runs, "VERSION", async (h) => {
    of(h).version.push(...(await h.call("version", { samples: 2 })));
  });
  await rounds(hosts, p.runs, "bridge ADD/DEL", async (h, r) => {
    of(h).bridge.push(await h.call("time", { length: 1, id: `bench${r}` }));
  });
  // Counts, not times: one flavour after the other.
  for (const h of hosts) {
    await h.attempt("processes", async () => {
      of(h).processes = await h.call("processes", {});
    });
    await h.attempt("memory", async () => {
      of(h).memory = await h.call("memory", {});
    });
  }
  console.error(`  empty hosts: ${seconds(t0)}`);
  for (const n of p.populations) {
    for (const h of hosts) {
      t0 = Date.now();
      await h.attempt(`filling to ${n}`, () => h.call("fill", { to: n }));
      if (n > 0 && !h.failed) console.error(`  ${h.label}: ${n} attached (${seconds(t0)})`);
    }
    t0 = Date.now();
    const chains = new Map(hosts.map((h) => [h, [] as Collected["bridge"]]));
    for (const h of hosts) of(h).chains.set(n, chains.get(h)!);
    await rounds(hosts, p.runs, `the chain at ${n}`, async (h, r) => {
      chains.get(h)!.push(await h.call("time", { length: 4, id: `bench${r}` }));
    });
    console.error(`  ${p.runs} rounds at ${n} attached: ${seconds(t0)}`);
  }
  return got;
}

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
      ...SHARED_RUN_OPTION,
    },
  });
  const p: Params = {
    runs: intArg(USAGE, "runs", values.runs ?? positionals[0], 15, 1),
    populations: values.populations
      ? intListArg(USAGE, "--populations", values.populations)
      : positionals[1] !== undefined
        ? [0, intArg(USAGE, "population", positionals[1], 0)]
        : [0, 200, 2000],
    parallel: intArg(USAGE, "--parallel", values.parallel, 4, 1),
  };
  p.populations = [...new Set([0, ...p.populations])].sort((a, b) => a - b);
  const upstreamCurrent = values["upstream-current"];
  if (upstreamCurrent && !existsSync(join(upstreamCurrent, "bridge")))
    throw new Error(`--upstream-current ${upstreamCurrent}: no bridge plugin there`);
  const chosen = (store: string): Flavour[] => {
    const all = flavours({ ours: OURS, upstreamCurrent, baseline: values.baseline }, store);
    const got = chooseFlavours(all, values.only);
    return typeof got === "string" ? usageError(USAGE, got) : got;
  };
  chosen("");
  const run = await privateRun(values["shared-run"]);
  const store = mkdtempSync(join(tmpdir(), "cni-nft-bench-"));
  const list = chosen(store);
  console.log(
    `runs per figure: ${p.runs}, flavours interleaved; populations: ${p.populations.join(", ")} (filled ${p.parallel} at a time); our plugins: ${OURS}\n${run}\n`,
  );
  removeNamespacesOnSignals(PREFIX, [store]);
  const hosts: FlavourHost[] = [];
  try {
    for (const [k, f] of list.entries()) {
      const h = FlavourHost.start(f, `${PREFIX}h${k}`);
      hosts.push(h);
      await h.attempt("setup", () =>
        h.call("setup", { flavour: f, store, prefix: `${PREFIX}f${k}`, parallel: p.parallel }),
      );
    }
    const got = await measure(hosts, p);
    for (const h of hosts) {
      try {
        const counts = await h.stop();
        if (h.flavour.resident) got.get(h)!.counts = counts;
      } catch (e) {
        if (!h.failed) h.fail("stop", e);
      }
    }
    const saved = hosts.map((h) => ({ flavour: h.label, figures: figuresOf(got.get(h)!, p.populations) }));
    printTable(saved);
    for (const h of hosts.filter((x) => x.failed)) console.log(`${h.label}: ${h.failed}`);
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
        interleaved: true,
        privateRun: !values["shared-run"],
      },
      saved,
    );
  } finally {
    removeNamespaces(PREFIX);
    rmSync(store, { recursive: true, force: true });
  }
}

await main();
