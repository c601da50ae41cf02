/**
 * The iptables backends in-process (root): with N containers written in bulk in each backend's
 * exact layout (portmap and masquerade in nat, firewall in filter: one host carrying all three, as
 * with the chain bridge ipMasq -> portmap -> firewall), the wall time of one more container's ADD
 * and DEL through portmap, masquerade and firewall, median of R, and where it goes: the
 * iptables-save processes (with the nft listing that asks whether a table exists, and the
 * `iptables -S CHAIN` listings of one chain), parsing their
 * output in JS, the iptables-restore processes (sums over the call: the families' calls may
 * overlap; what is left of the total is the lock, records, building lines). With `--base DIR`,
 * the same backends of another checkout (e.g. the commit before a change) are measured in the same
 * run, alternating round by round with this one's, on the same filled host.
 *
 *   bun bench/iptables-steps.ts [--base DIR] [--shared-run] [N...]   (default 0 2000 10000;
 *                                      BENCH_STEPS_ROUNDS, default 9)
 *
 * Under bun as the compiled plugins run (the lock through libc); under node each lock is a
 * flock(1) process, ~10 ms more per portmap and firewall call.
 *
 * It runs itself in a new network namespace (bench/lib/private-run.ts), so nothing of the host's
 * iptables is read or changed, with a private /run (records, lock files and the xtables lock of
 * nobody else) unless `--shared-run`.
 */
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { fileURLToPath, pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { benchArgs, intArg } from "./lib/args.js";
import { privateRun, SHARED_RUN_OPTION, SHARED_RUN_USAGE } from "./lib/private-run.js";
import { benchConf } from "./lib/portmap-bulk.js";
import { fillerAddr, fillerPort } from "./lib/fill.js";
import { containerRules, dnatChainName } from "../plugins/meta/portmap/portmap_iptables.js";
import { masqLines } from "../src/ipmasq/ipmasq_iptables.js";
import { rules as firewallRules } from "../plugins/meta/firewall/firewall_iptables.js";
import { iptablesChainName, type Attachment } from "../src/cni/attachment.js";
import { fileRecords } from "../src/hoststate/records.js";
import { SystemIptables, type IptablesRunner } from "../src/iptables/iptables.js";
import type { Runner } from "../src/process/runner.js";
import { systemRunner } from "../src/process/runner.js";
import type { HostStateBackend } from "../src/hoststate/index.js";
import type { FirewallSpec } from "../plugins/meta/firewall/firewall_backend.js";

const USAGE = `usage: bun bench/iptables-steps.ts [--base DIR] [--shared-run] [N...]
  --base DIR             another checkout whose iptables backends run alternately with this one's
${SHARED_RUN_USAGE}
                         (a network namespace of its own either way)
  N                      containers written before each figure (default 0 2000 10000)
Environment: BENCH_STEPS_ROUNDS (default 9).`;
const cli = benchArgs({
  usage: USAGE,
  maxPositionals: Infinity,
  options: { base: { type: "string" }, ...SHARED_RUN_OPTION },
});
const POPULATIONS = cli.positionals.length
  ? cli.positionals.map((n) => intArg(USAGE, "N", n, 0))
  : [0, 2000, 10000];
const ROUNDS = Number(process.env["BENCH_STEPS_ROUNDS"] ?? 9);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Nothing of the host's iptables is read or changed: a network namespace of its own, always.
console.log(await privateRun(cli.values["shared-run"], { network: true }));

/** Wall time of the processes run, by what they are. */
class Steps {
  process = { save: 0, restore: 0, other: 0 };
  saveTotal = 0;
  saves = 0;
  restores = 0;
  lists = 0;
  reset(): void {
    this.process = { save: 0, restore: 0, other: 0 };
    this.saveTotal = 0;
    this.saves = 0;
    this.restores = 0;
    this.lists = 0;
  }
}

function timedRunner(steps: Steps): Runner {
  return {
    async run(cmd) {
      const t0 = performance.now();
      try {
        return await systemRunner.run(cmd);
      } finally {
        const ms = performance.now() - t0;
        const what = cmd.argv[0]!;
        if (/^ip6?tables$/.test(what) && cmd.argv.includes("-S")) {
          steps.process.save += ms; // one chain listed
          steps.lists++;
        } else if (/^ip6?tables(-restore)?$/.test(what)) {
          // What writes: iptables-restore, and iptables -N of a chain a fallback creates.
          steps.process.restore += ms;
          if (what.endsWith("-restore")) steps.restores++;
        } else if (/^ip6?tables-save$/.test(what)) steps.process.save += ms;
        else steps.process.other += ms; // nft: does the table exist? (before a save)
      }
    },
  };
}

/** `ipt` with the whole of each save timed (process, the nft listing before it, and parsing). */
function timedIptables(ipt: IptablesRunner, steps: Steps): IptablesRunner {
  return {
    available: (f) => ipt.available(f),
    restore: (f, t, l) => ipt.restore(f, t, l),
    newChain: (f, t, c) => ipt.newChain(f, t, c),
    listChain: (f, t, c) => ipt.listChain(f, t, c),
    async save(f, t) {
      const t0 = performance.now();
      try {
        return await ipt.save(f, t);
      } finally {
        steps.saveTotal += performance.now() - t0;
        steps.saves++;
      }
    },
  };
}

interface Trees {
  portmap: new (ipt: IptablesRunner, records: ReturnType<typeof fileRecords>) => HostStateBackend<never>;
  masq: new (ipt: IptablesRunner, records?: ReturnType<typeof fileRecords>) => HostStateBackend<never>;
  firewall: new (ipt: IptablesRunner, records: ReturnType<typeof fileRecords>) => HostStateBackend<never>;
}

async function load(dir: string): Promise<Trees> {
  const at = (p: string): string => pathToFileURL(resolve(dir, p)).href;
  const pm = (await import(at("plugins/meta/portmap/portmap_iptables.ts"))) as Record<string, unknown>;
  const mq = (await import(at("src/ipmasq/ipmasq_iptables.ts"))) as Record<string, unknown>;
  const fw = (await import(at("plugins/meta/firewall/firewall_iptables.ts"))) as Record<string, unknown>;
  return {
    portmap: pm["IptablesPortMapper"] as Trees["portmap"],
    masq: mq["IptablesMasq"] as Trees["masq"],
    firewall: fw["IptablesFirewall"] as Trees["firewall"],
  };
}

const steps = new Steps();
const ipt = timedIptables(new SystemIptables(timedRunner(steps)), steps);
const here = fileURLToPath(new URL("..", import.meta.url));
const trees: Array<[string, Trees]> = [["this", await load(here)]];
if (cli.values.base) trees.push(["base", await load(cli.values.base)]);

const fwSpec = (ip: string): FirewallSpec => ({
  addresses: [`${ip}/32`],
  adminChain: "CNI-ADMIN",
  zone: "trusted",
  ingressPolicy: "open",
  mark: 0x1000,
});
const measured: Attachment = { network: "benchnet", containerId: "measured", ifname: "eth0" };
const pmSpec = (() => {
  const { network: _n, containerId: _c, ifname: _i, ...spec } = benchConf("measured", "10.99.0.2", 8080);
  return spec;
})();
const masqSpec = { addresses: ["10.99.0.2/16"] };

/** Containers from..to-1 of all three in one iptables-restore per table, in each backend's layout. */
async function fill(from: number, to: number): Promise<void> {
  const nat: string[] = [];
  const filter: string[] = [];
  for (let i = from; i < to; i++) {
    const c = benchConf(`fill${i}`, fillerAddr(i), fillerPort(i));
    const { rules, entries } = containerRules(c, 4, fillerAddr(i), "10.99.0.0/16");
    nat.push(`:${dnatChainName(c.network, c.containerId)} - [0:0]`, ...rules, ...entries);
    const a = { network: c.network, containerId: c.containerId, ifname: "eth0" };
    const m = masqLines(a, 4, [`${fillerAddr(i)}/16`]);
    nat.push(`:${iptablesChainName(a)} - [0:0]`, ...m.rules, ...m.jumps);
    filter.push(...firewallRules.perAddress(`${fillerAddr(i)}/32`));
  }
  await ipt.restore(4, "nat", nat);
  await ipt.restore(4, "filter", filter);
}

type Row = {
  total: number[];
  save: number[];
  parse: number[];
  restore: number[];
  rest: number[];
  calls: string;
};
const newRow = (): Row => ({ total: [], save: [], parse: [], restore: [], rest: [], calls: "" });

async function timed(row: Row, fn: () => Promise<unknown>): Promise<void> {
  steps.reset();
  const t0 = performance.now();
  await fn();
  const total = performance.now() - t0;
  const save = steps.process.save + steps.process.other;
  row.total.push(total);
  row.save.push(save);
  row.parse.push(Math.max(0, steps.saveTotal - save));
  row.restore.push(steps.process.restore);
  row.calls = `${steps.saves} save, ${steps.lists} -S, ${steps.restores} restore`;
}

const fmt = (xs: number[]): string => median(xs).toFixed(1).padStart(7);

// The shared chains of each backend, as the first ADD on a host writes them.
const seed: Attachment = { network: "benchnet", containerId: "seed", ifname: "eth0" };
const first = trees[0]![1];
await new first.portmap(ipt, fileRecords("portmap-iptables")).setUp(seed, pmSpec as never);
await new first.firewall(ipt, fileRecords("firewall-iptables")).setUp(seed, fwSpec("10.99.0.1") as never);
console.log(
  `load average at start: ${loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`,
);
let have = 0;
for (const n of POPULATIONS) {
  await fill(have, n);
  have = Math.max(have, n);
  const rows = new Map<string, Row>();
  const row = (k: string): Row => rows.get(k) ?? rows.set(k, newRow()).get(k)!;
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? trees : [...trees].reverse();
    for (const [name, t] of order) {
      const pm = new t.portmap(ipt, fileRecords("portmap-iptables"));
      const mq = new t.masq(ipt, fileRecords("masquerade-iptables"));
      const fw = new t.firewall(ipt, fileRecords("firewall-iptables"));
      await timed(row(`${name} portmap ADD`), () => pm.setUp(measured, pmSpec as never));
      await timed(row(`${name} portmap DEL`), () => pm.remove(measured));
      await timed(row(`${name} masquerade ADD`), () => mq.setUp(measured, masqSpec as never));
      await timed(row(`${name} masquerade DEL`), () => mq.remove(measured));
      await timed(row(`${name} firewall ADD`), () => fw.setUp(measured, fwSpec("10.99.0.2") as never));
      await timed(row(`${name} firewall DEL`), () => fw.remove(measured, fwSpec("10.99.0.2") as never));
    }
  }
  console.log(
    `\nN=${n}  (median of ${ROUNDS}, ms; load ${loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")})\n${"".padEnd(24)}  total  save/-S+nft parse  restore  calls`,
  );
  for (const [k, v] of rows)
    console.log(`${k.padEnd(24)}${fmt(v.total)}${fmt(v.save)}${fmt(v.parse)}${fmt(v.restore)}  ${v.calls}`);
  await probes();
}
// The seed's records are files under /run (the machine's with --shared-run): its DEL takes them.
await new first.portmap(ipt, fileRecords("portmap-iptables")).remove(seed);
await new first.firewall(ipt, fileRecords("firewall-iptables")).remove(seed, fwSpec("10.99.0.1") as never);

/**
 * What one iptables-restore costs by what its batch asks iptables-nft to load first: each probe
 * is one restore (median of R), with an untimed restore before it (`before`) and after it
 * (`after`) that leave the table as it was.
 */
async function probes(): Promise<void> {
  const jump = "-m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT";
  const rule = (chain: string): string => `${chain} -p sctp -j RETURN`;
  const cases: Array<[string, string, string[], string[], string[]]> = [
    [
      "-N, -A, -F, -X of a new chain",
      "nat",
      [],
      ["-N PROBE", "-A PROBE -j RETURN", "-F PROBE", "-X PROBE"],
      [],
    ],
    ["-C in PREROUTING (2 rules)", "nat", [], [`-C PREROUTING ${jump}`], []],
    ["iptables -S PREROUTING", "nat", [], [], []],
    [
      "-A to CNI-HOSTPORT-DNAT",
      "nat",
      [],
      [`-A ${rule("CNI-HOSTPORT-DNAT")}`],
      [`-D ${rule("CNI-HOSTPORT-DNAT")}`],
    ],
    [
      "-D in CNI-HOSTPORT-DNAT",
      "nat",
      [`-A ${rule("CNI-HOSTPORT-DNAT")}`],
      [`-D ${rule("CNI-HOSTPORT-DNAT")}`],
      [],
    ],
    ["-A to CNI-FORWARD", "filter", [], [`-A ${rule("CNI-FORWARD")}`], [`-D ${rule("CNI-FORWARD")}`]],
    ["-D in CNI-FORWARD", "filter", [`-A ${rule("CNI-FORWARD")}`], [`-D ${rule("CNI-FORWARD")}`], []],
  ];
  for (const [what, table, before, lines, after] of cases) {
    const ms: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      await ipt.restore(4, table, before);
      const t0 = performance.now();
      if (lines.length) await ipt.restore(4, table, lines);
      else await ipt.listChain(4, table, "PREROUTING");
      ms.push(performance.now() - t0);
      await ipt.restore(4, table, after);
    }
    console.log(`  one call: ${what.padEnd(32)}${fmt(ms)} ms`);
  }
}
