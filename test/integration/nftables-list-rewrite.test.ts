/**
 * Listing with rule texts when another process rewrites the chain between the two reads, on the
 * real kernel: every ADD rewrites the shared skeleton chains (flush and add, new handles), so a
 * CHECK or migrate's verification beside a parallel ADD read the JSON of one generation and the
 * text of the next, and reported the skeleton's rules missing ("set up on nftables, but still
 * missing: rule ..."). Here the real nft runs, and the rewrite is made to fall between the first
 * JSON read and its text read (the exec holds the text read until the JSON read and the rewrite
 * are done): every listed rule must still come with its text.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { commandExec, NFTables, type NftExec } from "../../src/nftables/index.js";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";

const nets = new NetnsPool();
let ns: Netns;

const CHAIN = `add table inet rw
add counter inet rw masq
add chain inet rw post { type nat hook postrouting priority srcnat; }
add chain inet rw other
flush chain inet rw post
add rule inet rw post ip saddr 10.9.0.0/24 ip daddr != 10.9.0.0/24 counter name "masq" masquerade
add rule inet rw post ip saddr 10.9.1.0/24 jump other
`;

before(async () => {
  await sweepStaleNamespaces();
  ns = await nets.create("nftrw");
  await ns.sh(["nft", "-f", "-"], CHAIN);
});
after(() => nets.destroyAll());

/** The real nft; the first JSON read is followed by a rewrite of the chain before its text read runs. */
function rewriteAfterFirstJsonRead(): { exec: NftExec; runs: string[] } {
  const real = commandExec();
  const runs: string[] = [];
  let first: Promise<void> | undefined;
  const exec: NftExec = {
    run: async (args, stdin, netns) => {
      runs.push(args.join(" "));
      if (args[0] === "--json" && !first) {
        let done!: () => void;
        first = new Promise((resolve) => (done = resolve));
        const res = await real.run(args, stdin, netns);
        await ns.sh(["nft", "-f", "-"], CHAIN);
        done();
        return res;
      }
      if (args[0] === "-a") await first;
      return real.run(args, stdin, netns);
    },
  };
  return { exec, runs };
}

for (const how of ["listTable", "listRules"] as const)
  test(`${how} with texts, the chain rewritten between its JSON and its text read: every rule has its text`, async () => {
    const { exec, runs } = rewriteAfterFirstJsonRead();
    const nft = new NFTables({ family: "inet", table: "rw", netns: ns.path, exec });
    const rules =
      how === "listTable"
        ? ((await nft.listTable({ text: true })).rules.get("post") ?? [])
        : await nft.listRules("post", { text: true });
    assert.equal(rules.length, 2);
    assert.deepEqual(
      rules.map((r) => r.rule.replace(/ packets \d+ bytes \d+/, "")),
      [
        'ip saddr 10.9.0.0/24 ip daddr != 10.9.0.0/24 counter name "masq" masquerade',
        "ip saddr 10.9.1.0/24 jump other",
      ],
    );
    // The first pair was parted by the rewrite and read again.
    assert.equal(runs.filter((r) => r.startsWith("-a")).length, 2, runs.join("\n"));
  });
