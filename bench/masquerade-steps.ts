/**
 * masquerade nftables backend, in-process (root; one throwaway namespace): with N containers'
 * entries written in bulk in the backend's layout, the wall time of one more container's ADD, of
 * the same ADD again (wall and CPU: a repeated ADD), and of its DEL through the backend
 * (prevResult's addresses), and the nft calls each makes (runs and reads, by table): alone on
 * its subnets, and beside a neighbour on the same subnets (the usual case: its DEL must leave
 * the subnets' chains), on a host without upstream's table `inet cni_plugins_masquerade` and
 * with it. Median of R. Then the two ways of asking whether a table
 * exists by name (iptables-nft's `ip nat`, src/iptables/tables.ts).
 *
 *   bun bench/masquerade-steps.ts [N...]   (default 0 10000; BENCH_STEPS_ROUNDS, default 15)
 */
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { NFTables } from "../src/nftables/index.js";
import { memoryRecords } from "../src/hoststate/records.js";
import { MASQ_TABLE, NftablesMasq, UPSTREAM_MASQ_TABLE } from "../src/ipmasq/index.js";
import { populate } from "./lib/masquerade.js";
import { benchArgs, intArg } from "./lib/args.js";
import { counted, timedCpu } from "./lib/nft-calls.js";

const USAGE = `usage: bun bench/masquerade-steps.ts [N...]
  N  containers' entries written before each figure (default 0 10000; BENCH_STEPS_ROUNDS, default 15)`;
const { positionals } = benchArgs({ usage: USAGE, maxPositionals: Infinity });
const POPULATIONS = positionals.length ? positionals.map((n) => intArg(USAGE, "N", n, 0)) : [0, 10000];
const ROUNDS = Number(process.env["BENCH_STEPS_ROUNDS"] ?? 15);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const ns = `mqs${process.pid}`;
  execFileSync("ip", ["netns", "add", ns]);
  try {
    const netns = `/var/run/netns/${ns}`;
    const calls: string[] = [];
    const nft = counted(new NFTables({ family: "inet", table: MASQ_TABLE, netns }), calls);
    const masq = new NftablesMasq(nft, { has: () => true }, memoryRecords());
    const a = { network: "masqnet", containerId: "measured", ifname: "eth0" };
    const spec = { addresses: ["10.97.0.2/24", "fd97::2/64"] };
    console.log(
      `masquerade nftables steps, median of ${ROUNDS}, ${process.versions["bun"] ? "bun (libnftables in-process)" : "node (nft command)"}`,
    );
    let have = 0;
    for (const n of POPULATIONS) {
      if (n > have) await populate(ns, have, n);
      have = Math.max(have, n);
      for (const [upstream, shared] of [
        [false, false],
        [false, true],
        [true, true],
      ] as const) {
        const neighbour = { network: "masqnet", containerId: "neighbour", ifname: "eth0" };
        if (shared) await masq.setUp(neighbour, { addresses: ["10.97.0.3/24", "fd97::3/64"] });
        else await masq.remove(neighbour, { addresses: ["10.97.0.3/24", "fd97::3/64"] });
        const up = new NFTables({ family: "inet", table: UPSTREAM_MASQ_TABLE, netns });
        const tx = up.newTransaction();
        if (upstream) tx.add({ kind: "table" }).add({ kind: "chain", name: "masq_checks" });
        else tx.destroy({ kind: "table" });
        await up.run(tx);
        const [add, again, againCpu, del]: [number[], number[], number[], number[]] = [[], [], [], []];
        let [addCalls, againCalls, delCalls] = [[] as string[], [] as string[], [] as string[]];
        for (let r = 0; r < ROUNDS; r++) {
          calls.length = 0;
          let t0 = performance.now();
          await masq.setUp(a, spec);
          add.push(performance.now() - t0);
          addCalls = [...calls];
          // The same attachment ADDed again (a runtime retrying, cni-nft restore).
          calls.length = 0;
          const repeat = await timedCpu(() => masq.setUp(a, spec));
          again.push(repeat.ms);
          againCpu.push(repeat.cpu);
          againCalls = [...calls];
          calls.length = 0;
          t0 = performance.now();
          await masq.remove(a, spec);
          del.push(performance.now() - t0);
          delCalls = [...calls];
        }
        const where = `${shared ? "beside a neighbour" : "alone"}, ${upstream ? "upstream's table" : "no upstream table"}`;
        console.log(
          `N=${String(n).padStart(6)}  ${where.padEnd(38)}  ADD ${median(add).toFixed(2).padStart(6)} ms (${addCalls.length} nft calls)  ADD again ${median(again).toFixed(2).padStart(6)} ms, CPU ${median(againCpu).toFixed(2)} ms (${againCalls.join(", ")})  DEL ${median(del).toFixed(2).padStart(6)} ms (${delCalls.length}: ${delCalls.join(", ")})`,
        );
      }
    }
    // How a DEL asks whether iptables-nft's `ip nat` exists (src/iptables/tables.ts): a checked
    // create (the batch is aborted) against a terse listing of the table's sets by name.
    const nat = new NFTables({ family: "ip", table: "nat", netns });
    const [checked, listed]: [number[], number[]] = [[], []];
    for (let r = 0; r < ROUNDS; r++) {
      let t0 = performance.now();
      await nat.check(nat.newTransaction().create({ kind: "table" }));
      checked.push(performance.now() - t0);
      t0 = performance.now();
      await nat.list("sets").catch(() => undefined);
      listed.push(performance.now() - t0);
    }
    console.log(
      `ip nat absent: --check create table ${median(checked).toFixed(2)} ms, --terse list sets table ${median(listed).toFixed(2)} ms`,
    );
  } finally {
    execFileSync("ip", ["netns", "del", ns]);
  }
}
await main();
