/**
 * The demo: builds things in a throwaway network namespace, proves they work, and removes
 * everything, also when a step fails.
 */
import { execFileSync } from "node:child_process";
import { NFTables, concat, ifname } from "../src/nftables/index.js";

const ns = `cni-nft-demo-${process.pid}`;
const say = (s: string): void => console.log(s);

async function main(): Promise<void> {
  execFileSync("ip", ["netns", "add", ns]);
  try {
    say(`namespace ${ns} created`);
    const nft = new NFTables({ family: "inet", table: "cni_nft_demo", netns: `/var/run/netns/${ns}` });
    const tx = nft.newTransaction();
    tx.add({ kind: "table", comment: "cni-nft demo" });
    tx.add({
      kind: "chain",
      name: "forward",
      type: "filter",
      hook: "forward",
      priority: "filter",
      policy: "accept",
    });
    tx.add({ kind: "set", name: "allowed", type: "ipv4_addr", flags: ["interval"] });
    tx.add({ kind: "map", name: "ports", type: "inet_proto . inet_service : ipv4_addr . inet_service" });
    tx.add({
      kind: "rule",
      chain: "forward",
      rule: concat("iifname", ifname("cni0"), "ip saddr @allowed accept"),
    });
    tx.add({ kind: "element", set: "allowed", key: ["10.88.0.0/16"] });
    tx.add({ kind: "element", map: "ports", key: ["tcp", "8080"], value: ["10.88.0.2", "80"] });
    await nft.run(tx);
    say("one transaction applied: table, chain, set, map, rule and elements");
    say(`chains: ${(await nft.list("chains")).join(", ")}`);
    say(`sets: ${(await nft.list("sets")).join(", ")}; maps: ${(await nft.list("maps")).join(", ")}`);
    for (const r of await nft.listRules("forward", { text: true })) say(`rule #${r.handle}: ${r.rule}`);
    for (const e of await nft.listElements("map", "ports"))
      say(`map element: ${e.key.join(" . ")} -> ${e.value?.join(" . ")}`);
    await nft.run(nft.newTransaction().delete({ kind: "table" }));
    say("table deleted");
  } finally {
    execFileSync("ip", ["netns", "del", ns]);
    say(`namespace ${ns} removed`);
  }
}

main().catch((e: unknown) => {
  console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
