/**
 * firewall nftables backend, in-process (root; one throwaway namespace): with N containers
 * attached through the backend, the wall time of one more ADD, of the same ADD again (wall and
 * CPU: a repeated ADD) and of its DEL (prevResult's address), and of a DEL that finds its
 * address by listing the sets, as DEL did before owner elements (a backend with no record of
 * the attachment). Median of 11 (5 for the listing).
 *
 *   bun bench/firewall-steps.ts [N...]   (default 0 2000 10000; BENCH_FIREWALL_HOST_FORWARD=on:
 *                                         every attachment with hostForward into the host
 *                                         chain inet hostfw forward, nftables only)
 */
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { NFTables } from "../src/nftables/index.js";
import { memoryRecords } from "../src/hoststate/records.js";
import { NftablesFirewall, NFT_TABLE } from "../plugins/meta/firewall/firewall_nftables.js";
import type { FirewallSpec } from "../plugins/meta/firewall/firewall_backend.js";
import { benchArgs, intArg } from "./lib/args.js";
import { timedCpu } from "./lib/nft-calls.js";
import { HostForwardRules } from "../plugins/meta/firewall/firewall_host_forward.js";
import type { IptablesRunner } from "../src/iptables/iptables.js";

const USAGE = `usage: bun bench/firewall-steps.ts [N...]
  N  containers attached before each figure (default 0 2000 10000)`;
const { positionals } = benchArgs({ usage: USAGE, maxPositionals: Infinity });
const POPULATIONS = positionals.length ? positionals.map((n) => intArg(USAGE, "N", n, 0)) : [0, 2000, 10000];
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spec = (ip: string): FirewallSpec => ({
  addresses: [`${ip}/32`],
  adminChain: "CNI-ADMIN",
  zone: "trusted",
  ingressPolicy: "open",
  mark: 0x1000,
});
const addressOf = (i: number): string => `10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const ns = `fws${process.pid}`;
  execFileSync("ip", ["netns", "add", ns]);
  try {
    const nft = (): NFTables =>
      new NFTables({ family: "inet", table: NFT_TABLE, netns: `/var/run/netns/${ns}` });
    const tools = { has: () => true };
    const netns = `/var/run/netns/${ns}`;
    let hostForward: HostForwardRules | undefined;
    if (process.env["BENCH_FIREWALL_HOST_FORWARD"] === "on") {
      const hostNft = (family: "inet", table: string): NFTables => new NFTables({ family, table, netns });
      const fwd = hostNft("inet", "hostfw");
      await fwd.run(
        fwd.newTransaction().add({ kind: "table" }).add({
          kind: "chain",
          name: "forward",
          type: "filter",
          hook: "forward",
          priority: 0,
          policy: "accept",
        }),
      );
      const noIptables = { available: () => false } as unknown as IptablesRunner;
      hostForward = new HostForwardRules(
        { nft: hostNft, iptables: noIptables },
        { nftables: { family: "inet", table: "hostfw", chain: "forward" }, iptables: false },
      );
    }
    const records = memoryRecords();
    const fw = new NftablesFirewall(nft(), tools, records, hostForward);
    const unrecorded = new NftablesFirewall(nft(), tools, memoryRecords(), hostForward);
    const measured = { network: "fw", containerId: "measured", ifname: "eth0" };
    let have = 0;
    for (const n of POPULATIONS) {
      for (; have < n; have++)
        await fw.setUp({ network: "fw", containerId: `c${have}`, ifname: "eth0" }, spec(addressOf(have)));
      const [add, again, againCpu, del, listed]: [number[], number[], number[], number[], number[]] = [
        [],
        [],
        [],
        [],
        [],
      ];
      for (let r = 0; r < 11; r++) {
        add.push(await timed(() => fw.setUp(measured, spec("10.99.99.99"))));
        // The same attachment ADDed again (a runtime retrying, cni-nft restore).
        const repeat = await timedCpu(() => fw.setUp(measured, spec("10.99.99.99")));
        again.push(repeat.ms);
        againCpu.push(repeat.cpu);
        del.push(await timed(() => fw.remove(measured, spec("10.99.99.99"))));
      }
      for (let r = 0; r < 5; r++) {
        await fw.setUp(measured, spec("10.99.99.99"));
        listed.push(await timed(() => unrecorded.remove(measured)));
      }
      console.log(
        `N=${String(n).padStart(6)}  ADD ${median(add).toFixed(2)} ms  ADD again ${median(again).toFixed(2)} ms (CPU ${median(againCpu).toFixed(2)} ms)  DEL ${median(del).toFixed(2)} ms  DEL by listing ${median(listed).toFixed(2)} ms`,
      );
    }
  } finally {
    execFileSync("ip", ["netns", "del", ns]);
  }
}
await main();
