/**
 * The masquerade curve for bench/portmap.ts: with N containers' masquerade entries already on the
 * host (nftables backend, written in bulk exactly as the backend writes them), the wall time of
 * one more container's bridge ADD (ipMasq, ipMasqBackend nftables) and its DEL, through the
 * compiled bridge plugin in a throwaway host namespace.
 */
import { performance } from "node:perf_hooks";
import { NFTables } from "../../src/nftables/index.js";
import { MASQ_TABLE, NftablesMasq } from "../../src/ipmasq/index.js";
import { removeNamespaces } from "./namespaces.js";

export interface MasqRow {
  backend: "masquerade";
  n: number;
  add: number;
  del: number;
}

type Run = (
  argv: string[],
  input?: string,
  env?: NodeJS.ProcessEnv,
) => Promise<{ code: number; out: string; err: string }>;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const addr = (i: number): string => `10.98.${1 + (i >> 8)}.${i & 255}/16`;

async function populate(host: string, from: number, to: number): Promise<void> {
  const nft = new NFTables({ family: "inet", table: MASQ_TABLE, netns: `/var/run/netns/${host}` });
  const m = new NftablesMasq(nft, { has: () => true });
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
  const host = `${tag}-mq-h`;
  const ctr = `${tag}-mq-c`;
  const dataDir = `/tmp/${tag}-mq-ipam`;
  const sh = async (argv: string[]): Promise<void> => {
    const r = await run(argv);
    if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.err}`);
  };
  for (const n of [host, ctr]) await sh(["ip", "netns", "add", n]);
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
  const env = (verb: string): NodeJS.ProcessEnv => ({
    PATH: process.env["PATH"],
    CNI_COMMAND: verb,
    CNI_CONTAINERID: "measured",
    CNI_NETNS: `/var/run/netns/${ctr}`,
    CNI_IFNAME: "eth0",
    CNI_PATH: bin,
  });
  const plugin = async (verb: string, input: string): Promise<[number, string]> => {
    const t0 = performance.now();
    const r = await run(["ip", "netns", "exec", host, `${bin}/bridge`], input, env(verb));
    const ms = performance.now() - t0;
    if (r.code !== 0) throw new Error(`bridge ${verb}: ${r.out} ${r.err}`);
    return [ms, r.out];
  };
  const delConf = (addOut: string): string =>
    JSON.stringify({ ...(JSON.parse(conf) as object), prevResult: JSON.parse(addOut) as unknown });
  const rows: MasqRow[] = [];
  try {
    let have = 0;
    // The table and the bridge exist, as on a real host.
    const [, first] = await plugin("ADD", conf);
    await plugin("DEL", delConf(first));
    for (const n of ns) {
      await populate(host, have, n);
      have = Math.max(have, n);
      const adds: number[] = [];
      const dels: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const [a, out] = await plugin("ADD", conf);
        adds.push(a);
        const [d] = await plugin("DEL", delConf(out));
        dels.push(d);
      }
      rows.push({ backend: "masquerade", n, add: median(adds), del: median(dels) });
      console.log(
        `  masquerade N=${String(n).padStart(5)}  bridge ADD ${median(adds).toFixed(1)} ms  DEL ${median(dels).toFixed(1)} ms`,
      );
    }
  } finally {
    removeNamespaces(tag, [host, ctr]);
    await run(["rm", "-rf", dataDir]);
  }
  return rows;
}
