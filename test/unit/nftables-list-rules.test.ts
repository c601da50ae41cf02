/**
 * listRules and listTable with texts read twice (JSON for handles and comments, text for the
 * rules, in parallel) and join them by handle: a concurrent rewrite of a chain between the two
 * reads (flush and add, which give new handles; every ADD rewrites the shared skeleton chains)
 * must not read as rules without text (a CHECK, and migrate's verification after its set-up,
 * reported them missing).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { NFTables, type NftExec } from "../../src/nftables/index.js";

/** As nft 1.0.6 prints it (the library reads rules by this header). */
const json = (handles: number[]): string =>
  '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, ' +
  '{"chain": {"family": "inet", "table": "t", "name": "c", "handle": 1}}' +
  handles
    .map(
      (h) =>
        `, {"rule": {"family": "inet", "table": "t", "chain": "c", "handle": ${h}, "expr": [{"accept": null}]}}`,
    )
    .join("") +
  "]}\n";
const text = (handles: number[]): string =>
  `table inet t {\n\tchain c { # handle 1\n${handles.map((h) => `\t\tip saddr 10.0.0.${h} accept # handle ${h}\n`).join("")}\t}\n}\n`;

/** An exec whose first JSON read sees handles 5, 6 and every later read (and every text) 7, 8. */
function rewrittenOnce(seen: string[]): NftExec {
  let round = 0;
  return {
    run: (args) => {
      seen.push(args.join(" "));
      const isText = args[0] === "-a";
      if (!isText) round++;
      const handles = round === 1 && !isText ? [5, 6] : [7, 8];
      return Promise.resolve({ code: 0, stdout: isText ? text(handles) : json(handles), stderr: "" });
    },
  };
}

test("listRules with texts: a rewrite between its two reads is read again, not taken for rules without text", async () => {
  const seen: string[] = [];
  const exec = rewrittenOnce(seen);
  const rules = await new NFTables({ family: "inet", table: "t", exec }).listRules("c", { text: true });
  assert.deepEqual(
    rules.map((r) => [r.handle, r.rule]),
    [
      [7, "ip saddr 10.0.0.7 accept"],
      [8, "ip saddr 10.0.0.8 accept"],
    ],
  );
  assert.equal(seen.length, 4);
});

test("listTable with texts: a rewrite between its two reads is read again, not taken for rules without text", async () => {
  const seen: string[] = [];
  const nft = new NFTables({ family: "inet", table: "t", exec: rewrittenOnce(seen) });
  const state = await nft.listTable({ text: true });
  assert.deepEqual(
    state.rules.get("c")!.map((r) => [r.handle, r.rule]),
    [
      [7, "ip saddr 10.0.0.7 accept"],
      [8, "ip saddr 10.0.0.8 accept"],
    ],
  );
  assert.deepEqual(seen, [
    "--json list table inet t",
    "-a list table inet t",
    "--json list table inet t",
    "-a list table inet t",
  ]);
});

test("listTable without texts reads once", async () => {
  const seen: string[] = [];
  await new NFTables({ family: "inet", table: "t", exec: rewrittenOnce(seen) }).listTable();
  assert.deepEqual(seen, ["--json list table inet t"]);
});
