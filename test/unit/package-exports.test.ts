/** A Node program that imports the built package gets the library through package.json exports. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

test("cni-nft, cni-nft/nftables, cni-nft/nftables/fake and cni-nft/netfilter import from plain Node", (t) => {
  if (!existsSync(`${root}/dist/src/index.js`)) {
    t.skip("dist/ is not built (npm run build; scripts/test.sh builds it first)");
    return;
  }
  const program = `
    const top = await import("cni-nft");
    const lib = await import("cni-nft/nftables");
    const { FakeNFTables } = await import("cni-nft/nftables/fake");
    const netfilter = await import("cni-nft/netfilter");
    const fake = new FakeNFTables({ family: "inet", table: "t" });
    const tx = fake.newTransaction().add({ kind: "table" }).add({ kind: "chain", name: "c" });
    await fake.run(tx);
    console.log(JSON.stringify({
      top: typeof top.NFTables, cni: typeof top.cni.definePlugin, lib: typeof lib.concat,
      chains: await fake.list("chains"),
      translated: netfilter.translateRule("-p tcp --dport 22 -j ACCEPT", { family: 4, table: "filter" }).nft,
    }));`;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", program], {
    cwd: root,
    encoding: "utf8",
  });
  assert.deepEqual(JSON.parse(out), {
    top: "function",
    cni: "function",
    lib: "function",
    chains: ["c"],
    translated: "tcp dport 22 accept",
  });
});
