import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import { NFTables } from "../src/nftables/index.js";
import { memoryRecords } from "../src/hoststate/records.js";
import { NftablesFirewall, NFT_TABLE } from "../plugins/meta/firewall/firewall_nftables.js";
const ns = `fws${process.pid}`;
execFileSync("ip", ["netns", "add", ns]);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
try {
  const fw = new NftablesFirewall(new NFTables({ family: "inet", table: NFT_TABLE, netns: `/var/run/netns/${ns}` }), { has: () => true }, memoryRecords());
  const spec = (ip: string) => ({ addresses: [`${ip}/32`], adminChain: "CNI-ADMIN", zone: "trusted", ingressPolicy: "open" as const, mark: 0x1000 });
  let have = 0;
  for (const n of [0, 2000, 10000]) {
    for (; have < n; have++) await fw.setUp({ network: "fw", containerId: `c${have}`, ifname: "eth0" }, spec(`10.${100 + (have >> 16)}.${(have >> 8) & 255}.${have & 255}`));
    const add: number[] = [], del: number[] = [];
    for (let r = 0; r < 11; r++) {
      const a = { network: "fw", containerId: "measured", ifname: "eth0" };
      let t0 = performance.now(); await fw.setUp(a, spec("10.99.99.99")); add.push(performance.now() - t0);
      t0 = performance.now(); await fw.remove(a, spec("10.99.99.99")); del.push(performance.now() - t0);
    }
    const listed: number[] = [];
    const bare = new NftablesFirewall(new NFTables({ family: "inet", table: NFT_TABLE, netns: `/var/run/netns/${ns}` }), { has: () => true }, memoryRecords());
    for (let r = 0; r < 5; r++) {
      const a = { network: "fw", containerId: "measured", ifname: "eth0" };
      await fw.setUp(a, spec("10.99.99.99"));
      const t0 = performance.now(); await bare.remove(a); listed.push(performance.now() - t0);
    }
    console.log(`N=${n} DEL by listing the sets (as before) ${median(listed).toFixed(2)} ms`);
    console.log(`N=${n} firewall nftables ADD ${median(add).toFixed(2)} ms DEL ${median(del).toFixed(2)} ms (in-process)`);
  }
} finally { execFileSync("ip", ["netns", "del", ns]); }
