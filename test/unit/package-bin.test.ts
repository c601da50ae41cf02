/** The npm package's `bin` entry: `npx cni-nft` runs the CLI on plain Node after `npm install cni-nft`. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}/package.json`, "utf8")) as {
  bin: Record<string, string>;
  files: string[];
};

test("bin.cni-nft is a node script inside the published files that prints the CLI's usage", (t) => {
  const bin = pkg.bin["cni-nft"]!;
  assert.ok(
    pkg.files.some((f) => bin.startsWith(f)),
    `${bin} is published (files: ${pkg.files.join(", ")})`,
  );
  if (!existsSync(`${root}/${bin}`)) {
    t.skip("dist/ is not built");
    return;
  }
  assert.match(readFileSync(`${root}/${bin}`, "utf8"), /^#!\/usr\/bin\/env node\n/);
  const out = execFileSync(process.execPath, [`${root}/${bin}`, "--help"], { encoding: "utf8" });
  assert.match(out, /Usage: cni-nft COMMAND/);
  assert.match(out, /install/);
});
