/**
 * bridge ADD and DEL with `macspoofchk` against the number of spoof checks already on the host:
 * two builds of the plugins interleaved (A, B, A, B, ...), each in a throwaway host namespace of
 * its own filled with N checks in the layout that build writes (`chains`: upstream's, a jump per
 * container in `bridge nat PREROUTING` and two chains each, what cni-nft wrote before its own
 * table; `sets`: `bridge cni_nft_spoofcheck`, two elements and two owner elements each,
 * src/link/spoofcheck.ts), written in one nft run (no veths: nothing but the table is timed).
 * The measured ADD is a real one (L2 bridge, no IPAM: the veth, the bridge and the check), in
 * a private /run (bench/lib/private-run.ts). Per figure: median wall time and median CPU time of
 * the plugin process (bash `times`), and B against A.
 *
 *   node --import tsx bench/spoofcheck.ts --a OLD_DIR --b NEW_DIR [--n 0,1000,5000] [--runs 15]
 *       [--a-layout chains] [--b-layout sets] [--shared-run]
 */
import { loadavg } from "node:os";
import { Netns } from "../test/helpers/netns.js";
import { timedPluginCall } from "../test/helpers/soak-growth.js";
import { median } from "../test/helpers/soak.js";
import { NFTables } from "../src/nftables/index.js";
import { ownerElement } from "../src/hoststate/nft_owners.js";
import { nftOwnerHash } from "../src/cni/attachment.js";
import { declareSpoofSkeleton, spoofElements, SPOOF_TABLE } from "../src/link/spoofcheck.js";
import { removeNamespaces, removeNamespacesOnSignals } from "./lib/namespaces.js";
import { benchArgs, choiceArg, intArg, intListArg, usageError } from "./lib/args.js";
import { privateRun, SHARED_RUN_OPTION, SHARED_RUN_USAGE } from "./lib/private-run.js";

const LAYOUTS = ["chains", "sets"] as const;
type Layout = (typeof LAYOUTS)[number];
const USAGE = `usage: node --import tsx bench/spoofcheck.ts --a OLD_DIR --b NEW_DIR [--n 0,1000,5000] [--runs 15]
  --a DIR, --b DIR   the two builds' plugin directories (a dist/compiled each)
  --n LIST           spoof checks on the host, per figure (default 0,1000,5000)
  --runs N           ADD+DEL per build and figure (default 15)
  --a-layout L       the layout build A writes, chains or sets (default chains)
  --b-layout L       the layout build B writes (default sets)
${SHARED_RUN_USAGE}`;
const { values } = benchArgs({
  usage: USAGE,
  options: {
    a: { type: "string" },
    b: { type: "string" },
    n: { type: "string", default: "0,1000,5000" },
    runs: { type: "string", default: "15" },
    "a-layout": { type: "string", default: "chains" },
    "b-layout": { type: "string", default: "sets" },
    ...SHARED_RUN_OPTION,
  },
});
if (!values.a || !values.b) usageError(USAGE, "give --a DIR and --b DIR (plugin directories)");
const builds = [
  {
    label: "A",
    bin: values.a,
    layout: choiceArg(USAGE, "--a-layout", values["a-layout"], LAYOUTS) ?? "chains",
  },
  {
    label: "B",
    bin: values.b,
    layout: choiceArg(USAGE, "--b-layout", values["b-layout"], LAYOUTS) ?? "sets",
  },
];
const NS = intListArg(USAGE, "--n", values.n);
const RUNS = intArg(USAGE, "--runs", values.runs, 15, 1);
const RUN = await privateRun(values["shared-run"]);
const PREFIX = `cnt-${process.pid}-`;
removeNamespacesOnSignals(PREFIX);

const CONF = { cniVersion: "1.0.0", name: "spoofnet", type: "bridge", bridge: "spbr0", macspoofchk: true };
const macOf = (i: number): string =>
  `0a:58:${[(i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff, 1].map((x) => x.toString(16).padStart(2, "0")).join(":")}`;

/** N checks in upstream's layout, as its bridge writes them (one nft run). */
function chainsText(n: number): string {
  const lines = [
    "add table bridge nat",
    "add chain bridge nat PREROUTING { type filter hook prerouting priority -300 ; policy accept ; }",
  ];
  for (let i = 0; i < n; i++) {
    const id = `fill${i}-eth0`;
    const [iface, mac, c] = [`cni-br-iface-${id}`, `cni-br-iface-${id}-mac`, `comment "macspoofchk-${id}"`];
    lines.push(
      `add chain bridge nat ${iface}`,
      `add chain bridge nat ${mac}`,
      `add rule bridge nat PREROUTING iifname "vfill${i}" jump ${iface} ${c}`,
      `add rule bridge nat ${iface} jump ${mac} ${c}`,
      `add rule bridge nat ${mac} ether saddr ${macOf(i)} return ${c}`,
      `add rule bridge nat ${mac} drop ${c}`,
    );
  }
  return lines.join("\n") + "\n";
}

async function fill(host: Netns, layout: Layout, n: number): Promise<void> {
  if (n === 0) return;
  if (layout === "chains") {
    const r = await host.run(["nft", "-f", "-"], { input: chainsText(n), timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`filling ${n}: ${r.stderr}`);
    return;
  }
  const nft = new NFTables({ family: "bridge", table: SPOOF_TABLE, netns: host.path });
  const tx = nft.newTransaction();
  declareSpoofSkeleton(tx);
  for (let i = 0; i < n; i++) {
    const a = { network: "fillnet", containerId: `fill${i}`, ifname: "eth0" };
    for (const e of spoofElements(a, { hostVeth: `vfill${i}`, mac: macOf(i) })) {
      tx.add(e);
      tx.add(ownerElement(e, nftOwnerHash(a), e.comment));
    }
  }
  await nft.run(tx);
}

async function call(
  host: Netns,
  ctr: Netns,
  bin: string,
  verb: string,
): Promise<{ ms: number; cpu: number }> {
  const env = {
    PATH: process.env["PATH"],
    CNI_COMMAND: verb,
    CNI_CONTAINERID: "measured",
    CNI_NETNS: ctr.path,
    CNI_IFNAME: "eth0",
    CNI_PATH: bin,
  };
  return timedPluginCall(host, `${bin}/bridge`, CONF, env);
}

console.log(
  `bridge ADD/DEL with macspoofchk; ${RUNS} interleaved runs per figure; ${RUN}\n` +
    builds.map((b) => `${b.label}: ${b.bin} (${b.layout})`).join("\n") +
    `\nload average ${loadavg()[0]!.toFixed(1)}`,
);
try {
  for (const n of NS) {
    const hosts = await Promise.all(
      builds.map(async (b) => {
        const [host, ctr] = [await Netns.create(`sp${b.label}h`), await Netns.create(`sp${b.label}c`)];
        await fill(host, b.layout, n);
        return { ...b, host, ctr };
      }),
    );
    const samples = new Map<string, { ms: number[]; cpu: number[] }>();
    for (let i = 0; i < RUNS + 1; i++)
      for (const h of hosts) {
        const add = await call(h.host, h.ctr, h.bin, "ADD");
        const del = await call(h.host, h.ctr, h.bin, "DEL");
        // The first round warms both builds up (page cache, the table's skeleton).
        if (i === 0) continue;
        for (const [verb, s] of [
          ["ADD", add],
          ["DEL", del],
        ] as const) {
          const m = samples.get(`${verb} ${h.label}`) ?? { ms: [], cpu: [] };
          m.ms.push(s.ms);
          m.cpu.push(s.cpu);
          samples.set(`${verb} ${h.label}`, m);
        }
      }
    console.log(`\nN = ${n} spoof checks on the host (load average ${loadavg()[0]!.toFixed(1)})`);
    for (const verb of ["ADD", "DEL"]) {
      const [a, b] = [samples.get(`${verb} A`)!, samples.get(`${verb} B`)!];
      const [aw, bw, ac, bc] = [median(a.ms), median(b.ms), median(a.cpu), median(b.cpu)];
      console.log(
        `  bridge ${verb} wall A ${aw.toFixed(1)} ms, B ${bw.toFixed(1)} ms (${(bw / aw).toFixed(2)}x); CPU A ${ac.toFixed(0)} ms, B ${bc.toFixed(0)} ms (${(bc / ac).toFixed(2)}x)`,
      );
    }
    for (const h of hosts) await Promise.all([h.host.destroy(), h.ctr.destroy()]);
  }
} finally {
  removeNamespaces(PREFIX);
}
