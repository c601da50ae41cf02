/**
 * portmap nftables steps (root; throwaway namespace): with N containers written in one nft run in
 * the backend's exact layout, the wall time of each nft step one ADD or DEL makes, each run
 * in-process (bun: libnftables) or as the nft command (node), median of R, every step undone
 * after it. Says which step grows with the number of containers. Last, per N, a repeated ADD
 * through the backend itself (the same attachment ADDed a second time: wall, this process's CPU,
 * the nft calls it makes).
 *
 *   bun bench/portmap-steps.ts [N...]   (default 0 2000; BENCH_STEPS_ROUNDS, default 15;
 *                                        BENCH_STEPS_SNAT=off: containers without snat;
 *                                        BENCH_STEPS_CONDITIONS=on: every container with
 *                                        conditionsV4, one class)
 */
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { nftOwnerHash } from "../src/cni/attachment.js";
import { NFTables, type Transaction } from "../src/nftables/index.js";
import {
  NFT_TABLE,
  desired,
  keyOnly,
  ownerElement,
  ownTransaction,
  writeSkeletonRules,
  skeletonRules,
} from "../plugins/meta/portmap/portmap_nftables_layout.js";
import { NftablesPortMapper } from "../plugins/meta/portmap/portmap_nftables.js";
import { memoryRecords } from "../src/hoststate/records.js";
import { benchConf, bulkFill } from "./lib/portmap-bulk.js";
import { benchArgs, intArg } from "./lib/args.js";
import { counted, timedCpu } from "./lib/nft-calls.js";

const USAGE = `usage: bun bench/portmap-steps.ts [N...]
  N  containers written before each figure (default 0 2000)
Prints, per N, the median wall time of each nft step of one ADD and DEL, and of a repeated ADD
through the backend (with its CPU time and nft calls).
Environment: BENCH_STEPS_ROUNDS (default 15), BENCH_STEPS_SNAT=off (containers without snat),
BENCH_STEPS_CONDITIONS=on (every container with conditionsV4, one class).`;
const NS = benchArgs({ usage: USAGE, maxPositionals: Infinity }).positionals.map((n) =>
  intArg(USAGE, "N", n, 0),
);
const POPULATIONS = NS.length ? NS : [0, 2000];
const ROUNDS = Number(process.env["BENCH_STEPS_ROUNDS"] ?? 15);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const SNAT = process.env["BENCH_STEPS_SNAT"] !== "off";
const CONDITIONS = process.env["BENCH_STEPS_CONDITIONS"] === "on" ? ["ip saddr != 192.0.2.0/24"] : [];
const measured = benchConf("measured", "10.99.0.2", 8080, SNAT, CONDITIONS);
const hash = nftOwnerHash(measured);
const want = desired(measured);

/** Each step: what it writes, and what undoes it. */
type Step = [name: string, run: (tx: Transaction) => void, undo: ((tx: Transaction) => void) | undefined];
const elementsOf = (pick: (map: string) => boolean): typeof want.elements =>
  want.elements.filter((e) => pick(e.map ?? e.set ?? ""));
const undoElements = (es: typeof want.elements) => (tx: Transaction) => {
  for (const e of es) {
    tx.delete(ownerElement(e, hash));
    tx.delete(keyOnly(e));
  }
};
const addElements = (es: typeof want.elements) => (tx: Transaction) => {
  for (const e of es) {
    tx.create(e);
    tx.add(ownerElement(e, hash, e.comment));
  }
};
const STEPS: Step[] = [
  [
    "ADD as today (skeleton rules + own)",
    (tx) => (writeSkeletonRules(tx), ownTransaction(tx, hash, want, "create")),
    undoElements(want.elements),
  ],
  [
    "own part only (shared chains + elements)",
    (tx) => ownTransaction(tx, hash, want, "create"),
    undoElements(want.elements),
  ],
  ["skeleton rules only", (tx) => writeSkeletonRules(tx), undefined],
  ...skeletonRules().map((c): Step => [
    `skeleton chain ${c.chain} only`,
    (tx) => {
      tx.flush({ kind: "chain", name: c.chain });
      for (const rule of c.rules) tx.add({ kind: "rule", chain: c.chain, rule });
    },
    undefined,
  ]),
  [
    "dnat element + owner",
    addElements(elementsOf((m) => m.startsWith("dnat_"))),
    undoElements(elementsOf((m) => m.startsWith("dnat_"))),
  ],
  [
    "snat element + owner",
    addElements(elementsOf((m) => m.startsWith("snat"))),
    undoElements(elementsOf((m) => m.startsWith("snat"))),
  ],
  [
    "condition elements + owners",
    addElements(elementsOf((m) => m.startsWith("guard") || m.startsWith("cond_"))),
    undoElements(elementsOf((m) => m.startsWith("guard") || m.startsWith("cond_"))),
  ],
];

async function main(): Promise<void> {
  const ns = `pms${process.pid}`;
  execFileSync("ip", ["netns", "add", ns]);
  try {
    const nft = new NFTables({ family: "inet", table: NFT_TABLE, netns: `/var/run/netns/${ns}` });
    let have = 0;
    console.log(
      `portmap nftables steps, median of ${ROUNDS}, ${process.versions["bun"] ? "bun (libnftables in-process)" : "node (nft command)"}`,
    );
    for (const n of POPULATIONS) {
      await bulkFill(nft, have, n, SNAT, CONDITIONS);
      have = Math.max(have, n);
      for (const [name, step, undo] of STEPS) {
        const times: number[] = [];
        for (let r = 0; r < ROUNDS; r++) {
          const t = nft.newTransaction();
          step(t);
          const t0 = performance.now();
          await nft.run(t);
          times.push(performance.now() - t0);
          if (undo) {
            const u = nft.newTransaction();
            undo(u);
            await nft.run(u);
          }
        }
        console.log(
          `N=${String(n).padStart(6)}  ${name.padEnd(44)} ${median(times).toFixed(2).padStart(8)} ms`,
        );
      }
      const dels: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const t = nft.newTransaction();
        ownTransaction(t, hash, want, "create");
        await nft.run(t);
        const u = nft.newTransaction();
        undoElements(want.elements)(u);
        const t0 = performance.now();
        await nft.run(u);
        dels.push(performance.now() - t0);
      }
      console.log(
        `N=${String(n).padStart(6)}  ${"DEL: elements + owners".padEnd(44)} ${median(dels).toFixed(2).padStart(8)} ms`,
      );
      const probes: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        const t0 = performance.now();
        await nft
          .forTable("ip", "cni_hostport")
          .listTable()
          .catch(() => undefined);
        probes.push(performance.now() - t0);
      }
      console.log(
        `N=${String(n).padStart(6)}  ${"list table ip cni_hostport (absent)".padEnd(44)} ${median(probes).toFixed(2).padStart(8)} ms`,
      );
      // The plugin's own ADD path (NftablesPortMapper.setUp, its record in memory): one ADD, then
      // the same attachment ADDed again (a runtime retrying, cni-nft restore), then its DEL.
      const calls: string[] = [];
      const backend = new NftablesPortMapper(counted(nft, calls), { has: () => true }, memoryRecords());
      const [again, againCpu]: [number[], number[]] = [[], []];
      let againCalls: string[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        await backend.setUp(measured, measured);
        calls.length = 0;
        const t = await timedCpu(() => backend.setUp(measured, measured));
        again.push(t.ms);
        againCpu.push(t.cpu);
        againCalls = [...calls];
        await backend.remove(measured, measured);
      }
      console.log(
        `N=${String(n).padStart(6)}  ${"repeated ADD (backend), wall".padEnd(44)} ${median(again).toFixed(2).padStart(8)} ms  (CPU ${median(againCpu).toFixed(2)} ms; ${againCalls.join(", ")})`,
      );
    }
  } finally {
    execFileSync("ip", ["netns", "del", ns]);
  }
}
await main();
