/**
 * The masquerade curve for bench/portmap.ts: with N containers' masquerade entries already on the
 * host (nftables backend, written in bulk exactly as the backend writes them), the wall time of
 * one more container's bridge ADD (ipMasq, ipMasqBackend nftables) and its DEL, through the
 * compiled bridge plugin in a throwaway host namespace, each taken in alternation with the same
 * on an empty host namespace.
 */
import { performance } from "node:perf_hooks";
import { NFTables } from "../../src/nftables/index.js";
import { MASQ_TABLE, NftablesMasq } from "../../src/ipmasq/index.js";
import { removeNamespaces } from "./namespaces.js";
import { memoryRecords } from "../../src/hoststate/records.js";

export interface MasqRow {
  backend: "masquerade";
  n: number;
  add: number;
  del: number;
  /** The same on an empty host, measured in alternation. */
  empty: { add: number; del: number };
}

type Run = (
  argv: string[],
  input?: string,
  env?: NodeJS.ProcessEnv,
) => Promise<{ code: number; out: string; err: string }>;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const addr = (i: number): string => `10.98.${1 + (i >> 8)}.${i & 255}/16`;

export async function populate(host: string, from: number, to: number): Promise<void> {
  const nft = new NFTables({ family: "inet", table: MASQ_TABLE, netns: `/var/run/netns/${host}` });
  const m = new NftablesMasq(nft, { has: () => true }, memoryRecords());
  for (let start = from; start < to; start += 2000) {
    const txs = [];
    for (let i = start; i < Math.min(to, start + 2000); i++) {
      const plan = await m.plan(
        { network: "masqnet", containerId: `mfill${i}`, ifname: "eth0" },
        { addresses: [addr(i)] },
      );
      txs.push(...plan.fast);
    }
    await nft.runAll(txs);
  }
}

export async function benchMasquerade(
  run: Run,
  bin: string,
  tag: string,
  ns: readonly number[],
  rounds: number,
): Promise<MasqRow[]> {
  const dataDir = `/tmp/${tag}-mq-ipam`;
  const sh = async (argv: string[]): Promise<void> => {
    const r = await run(argv);
    if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.err}`);
  };
  // A filled host and an empty one, measured in alternation so the ratio holds on a loaded machine.
  const sides = (["h", "e"] as const).map((s) => ({ host: `${tag}-mq-${s}`, ctr: `${tag}-mq-${s}c` }));
  for (const { host, ctr } of sides) for (const n of [host, ctr]) await sh(["ip", "netns", "add", n]);
  const conf = JSON.stringify({
    cniVersion: "1.0.0",
    name: "masqnet",
    type: "bridge",
    bridge: "mqbr0",
    isGateway: true,
    ipMasq: true,
    ipMasqBackend: "nftables",
    ipam: { type: "host-local", dataDir, ranges: [[{ subnet: "10.97.0.0/24" }]] },
  });
  const plugin = async (
    side: (typeof sides)[number],
    verb: string,
    input: string,
  ): Promise<[number, string]> => {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env["PATH"],
      CNI_COMMAND: verb,
      CNI_CONTAINERID: "measured",
      CNI_NETNS: `/var/run/netns/${side.ctr}`,
      CNI_IFNAME: "eth0",
      CNI_PATH: bin,
    };
    const t0 = performance.now();
    const r = await run(["ip", "netns", "exec", side.host, `${bin}/bridge`], input, env);
    const ms = performance.now() - t0;
    if (r.code !== 0) throw new Error(`bridge ${verb}: ${r.out} ${r.err}`);
    return [ms, r.out];
  };
  const delConf = (addOut: string): string =>
    JSON.stringify({ ...(JSON.parse(conf) as object), prevResult: JSON.parse(addOut) as unknown });
  const pair = async (side: (typeof sides)[number]): Promise<[number, number]> => {
    const [a, out] = await plugin(side, "ADD", conf);
    const [d] = await plugin(side, "DEL", delConf(out));
    return [a, d];
  };
  const [filled, empty] = sides as [(typeof sides)[number], (typeof sides)[number]];
  const rows: MasqRow[] = [];
  try {
    let have = 0;
    // The tables and the bridges exist, as on a real host.
    for (const side of sides) await pair(side);
    for (const n of ns) {
      await populate(filled.host, have, n);
      have = Math.max(have, n);
      const [adds, dels, eAdds, eDels]: [number[], number[], number[], number[]] = [[], [], [], []];
      for (let i = 0; i < rounds; i++) {
        const [a, d] = await pair(filled);
        const [ea, ed] = await pair(empty);
        adds.push(a);
        dels.push(d);
        eAdds.push(ea);
        eDels.push(ed);
      }
      const row: MasqRow = {
        backend: "masquerade",
        n,
        add: median(adds),
        del: median(dels),
        empty: { add: median(eAdds), del: median(eDels) },
      };
      rows.push(row);
      console.log(
        `  masquerade N=${String(n).padStart(5)}  bridge ADD ${row.add.toFixed(1)} ms (empty ${row.empty.add.toFixed(1)})  DEL ${row.del.toFixed(1)} ms (empty ${row.empty.del.toFixed(1)})`,
      );
    }
  } finally {
    removeNamespaces(
      tag,
      sides.flatMap((x) => [x.host, x.ctr]),
    );
    await run(["rm", "-rf", dataDir]);
  }
  return rows;
}
