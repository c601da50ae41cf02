/**
 * Draws the benchmarks' curves as SVG (vega-lite compiled to vega, rendered headless: no canvas,
 * no browser) from the figures a bench run saved in bench/results/*.json, into docs/charts/.
 *
 *   npm run charts                 (after `npm run bench`, or node --import tsx bench/portmap.ts)
 *   node --import tsx bench/charts/render.ts [RESULTS_DIR] [CHARTS_DIR]
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { SavedRun } from "../lib/results.js";

const RESULTS = fileURLToPath(new URL("../results", import.meta.url));
const CHARTS = fileURLToPath(new URL("../../docs/charts", import.meta.url));

interface PortmapRow {
  backend: "nftables" | "iptables" | "upstream" | "upstream-nft" | "masquerade";
  n: number;
  add: number;
  del: number;
  /** Absent for masquerade (bridge ADD/DEL). */
  conn?: number;
}

interface ChainRow {
  flavour: string;
  figures: Record<string, number | undefined>;
}

const IMPLEMENTATION: Record<PortmapRow["backend"], string> = {
  nftables: "cni-nft, nftables",
  iptables: "cni-nft, iptables",
  upstream: "upstream 1.1.1 (iptables)",
  "upstream-nft": "upstream current (nftables)",
  masquerade: "cni-nft masquerade, nftables (bridge ADD/DEL)",
};
const COLOURS = {
  domain: Object.values(IMPLEMENTATION),
  range: ["#1b7837", "#5aae61", "#b2182b", "#f4a582", "#2166ac"],
};

async function svgOf(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return svg + "\n";
}

function lineChart(
  title: string,
  yTitle: string,
  rows: object[],
  y: string,
  run: SavedRun<unknown>,
): TopLevelSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: { text: title, subtitle: `bench/portmap.ts, ${run.date.slice(0, 10)}; median per point` },
    width: 420,
    height: 240,
    data: { values: rows },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "n", type: "quantitative", title: "port mappings already on the host" },
      y: { field: y, type: "quantitative", title: yTitle },
      color: {
        field: "implementation",
        type: "nominal",
        scale: COLOURS,
        legend: { orient: "top", title: null },
      },
    },
  };
}

function readRun<T>(dir: string, bench: string): SavedRun<T> | undefined {
  const file = join(dir, `${bench}.json`);
  return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as SavedRun<T>) : undefined;
}

/** Renders every chart whose figures are in `resultsDir`; returns the files written. */
export async function render(resultsDir = RESULTS, chartsDir = CHARTS): Promise<string[]> {
  mkdirSync(chartsDir, { recursive: true });
  const written: string[] = [];
  const write = async (name: string, spec: TopLevelSpec): Promise<void> => {
    const file = join(chartsDir, `${name}.svg`);
    writeFileSync(file, await svgOf(spec));
    written.push(file);
  };
  const portmap = readRun<PortmapRow[]>(resultsDir, "portmap");
  if (portmap) {
    const rows = portmap.figures.map((r) => ({ ...r, implementation: IMPLEMENTATION[r.backend] }));
    await write(
      "portmap-add",
      lineChart("portmap ADD of one more container", "ADD ms", rows, "add", portmap),
    );
    await write("portmap-del", lineChart("portmap DEL of that container", "DEL ms", rows, "del", portmap));
    await write(
      "portmap-connect",
      lineChart(
        "A new TCP connection through a mapped port",
        "connect ms",
        rows.filter((r) => r.conn !== undefined),
        "conn",
        portmap,
      ),
    );
  }
  const chain = readRun<ChainRow[]>(resultsDir, "chain");
  if (chain) {
    const population = String(chain.params["population"]);
    const keys = [
      "chain ADD ms",
      "chain DEL ms",
      `chain ADD ms, ${population} attached`,
      `chain DEL ms, ${population} attached`,
    ];
    const rows = chain.figures.flatMap((f) =>
      keys.flatMap((k) => {
        const v = f.figures[k];
        return v === undefined ? [] : [{ flavour: f.flavour, figure: k.replace(" ms", ""), ms: v }];
      }),
    );
    await write("chain", {
      $schema: "https://vega.github.io/schema/vega-lite/v5.json",
      title: {
        text: "podman's chain (bridge, portmap, firewall, tuning), per backend",
        subtitle: `bench/chain.ts, ${chain.date.slice(0, 10)}; median of ${String(chain.params["runs"])}`,
      },
      width: 480,
      height: 260,
      data: { values: rows },
      mark: "bar",
      encoding: {
        x: {
          field: "figure",
          type: "nominal",
          sort: keys.map((k) => k.replace(" ms", "")),
          title: null,
          axis: { labelAngle: 0, labelLimit: 120 },
        },
        xOffset: { field: "flavour", type: "nominal" },
        y: { field: "ms", type: "quantitative", title: "ms" },
        color: {
          field: "flavour",
          type: "nominal",
          scale: { range: ["#b2182b", "#5aae61", "#1b7837", "#ef8a62"] },
          legend: { orient: "top", title: null, columns: 1 },
        },
      },
    });
  }
  return written;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const files = await render(process.argv[2], process.argv[3]);
  if (!files.length) {
    console.error(
      `no bench figures in ${process.argv[2] ?? RESULTS}: run npm run bench (or bench/portmap.ts, bench/chain.ts) first`,
    );
    process.exitCode = 1;
  } else for (const f of files) console.log(`wrote ${f}`);
}
