/**
 * The benchmark charts: the renderer draws valid SVG from saved figures (a fixture run), the
 * charts in docs/charts/ are valid SVG, and docs/performance.md and the README show them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DOMParser } from "@xmldom/xmldom";
import { render } from "../../bench/charts/render.js";
import { ROOT } from "../helpers/cni.js";

const CHARTS = join(ROOT, "docs", "charts");

function assertSvg(text: string, what: string): void {
  const errors: string[] = [];
  const doc = new DOMParser({
    onError: (level, msg) => void errors.push(`${level}: ${msg}`),
  }).parseFromString(text, "image/svg+xml");
  assert.deepEqual(errors, [], what);
  assert.equal(doc.documentElement?.nodeName, "svg", what);
  assert.equal(doc.documentElement?.getAttribute("xmlns"), "http://www.w3.org/2000/svg", what);
  assert.ok(Number(doc.documentElement?.getAttribute("width")) > 100, `${what}: has a size`);
}

test("the renderer draws valid SVG charts from a bench run's saved figures", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cni-nft-charts-"));
  try {
    const results = join(dir, "results");
    const out = join(dir, "charts");
    const rows = ["nftables", "iptables", "upstream"].flatMap((backend, i) =>
      [0, 100, 1000].map((n) => ({ backend, n, add: 20 + i * n * 0.01, del: 30 + i, conn: 0.2 + i * 0.1 })),
    );
    const run = (bench: string, params: object, figures: unknown) =>
      JSON.stringify({ bench, date: "2026-12-01T00:00:00.000Z", params, figures });
    await import("node:fs").then((fs) => fs.mkdirSync(results));
    writeFileSync(join(results, "portmap.json"), run("portmap", { mappings: [0, 100, 1000] }, rows));
    writeFileSync(
      join(results, "chain.json"),
      run("chain", { runs: 3, population: 50 }, [
        {
          flavour: "upstream",
          figures: { "chain ADD ms": 130, "chain DEL ms": 260, "chain ADD ms, 50 attached": 300 },
        },
        { flavour: "cni-nft, nftables backends", figures: { "chain ADD ms": 170, "chain DEL ms": 250 } },
      ]),
    );
    const files = await render(results, out);
    assert.deepEqual(files.map((f) => f.slice(out.length + 1)).sort(), [
      "chain.svg",
      "portmap-add.svg",
      "portmap-connect.svg",
      "portmap-del.svg",
    ]);
    for (const f of files) assertSvg(readFileSync(f, "utf8"), f);
    assert.match(readFileSync(join(out, "portmap-add.svg"), "utf8"), /upstream 1\.1\.1 \(iptables\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("docs/charts holds valid SVG; docs/performance.md shows every chart, the README one", () => {
  const charts = readdirSync(CHARTS).filter((f) => f.endsWith(".svg"));
  assert.ok(charts.length >= 4, charts.join(", "));
  const perf = readFileSync(join(ROOT, "docs", "performance.md"), "utf8");
  for (const c of charts) {
    assertSvg(readFileSync(join(CHARTS, c), "utf8"), c);
    assert.ok(perf.includes(`](charts/${c})`), `docs/performance.md shows ${c}`);
  }
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  assert.match(readme, /!\[[^\]]*\]\(docs\/charts\/[a-z-]+\.svg\)/);
});
