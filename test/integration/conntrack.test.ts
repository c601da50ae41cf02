/**
 * UDP conntrack entries of a host port are dropped (portmap's effect) through ctnetlink in the
 * compiled plugins and through the `conntrack` command on Node: real entries made by real
 * packets in a throwaway namespace; other ports, and TCP on the same port, keep theirs.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { flushUdpConntrack } from "../../src/conntrack/flush.js";
import { systemRunner, type Runner } from "../../src/process/index.js";
import { haveBun, runBun } from "../helpers/bun.js";
import { ROOT, cniOk } from "../helpers/cni.js";
import {
  NetnsPool,
  programsStarted,
  sweepStaleNamespaces,
  tracingExecs,
  type Netns,
} from "../helpers/netns.js";

const nets = new NetnsPool();
before(sweepStaleNamespaces);
after(() => nets.destroyAll());

const FLUSHED = 17053;
const OTHER = 17054;

/** A namespace whose loopback traffic is tracked, with entries: UDP to both ports (v4, v6), TCP to FLUSHED. */
async function withEntries(tag: string): Promise<Netns> {
  const ns = await nets.create(tag);
  await ns.sh(
    ["nft", "-f", "-"],
    "table inet track {\n chain out {\n  type filter hook output priority 0\n  ct state new counter\n }\n}\n",
  );
  const packets = `
    const dgram = require("node:dgram"), net = require("node:net");
    const send = (type, host, port) => new Promise((r) => { const s = dgram.createSocket(type); s.send("x", port, host, () => { s.close(); r(); }); });
    (async () => {
      for (const port of [${FLUSHED}, ${OTHER}]) { await send("udp4", "127.0.0.1", port); await send("udp6", "::1", port); }
      const server = net.createServer((c) => c.end()).listen(${FLUSHED}, "127.0.0.1", () => {
        const c = net.connect(${FLUSHED}, "127.0.0.1"); c.on("data", () => {}); c.on("close", () => server.close());
      });
    })();`;
  await ns.sh(["node", "-e", packets]);
  return ns;
}

/** The entries as "proto dport" lines, sorted (conntrack -L is the oracle). */
async function entries(ns: Netns): Promise<string[]> {
  const r = await ns.run(["conntrack", "-L"]);
  return r.stdout
    .split("\n")
    .map((l) => /^(\w+)\s.*?\bsrc=(\S+) .*?dport=(\d+)/.exec(l))
    .filter((m) => m !== null)
    .map((m) => `${m[1]} ${m[2]!.includes(":") ? "v6" : "v4"} ${m[3]}`)
    .sort();
}

const ALL = [
  `tcp v4 ${FLUSHED}`,
  `udp v4 ${FLUSHED}`,
  `udp v4 ${OTHER}`,
  `udp v6 ${FLUSHED}`,
  `udp v6 ${OTHER}`,
];
const AFTER = [`tcp v4 ${FLUSHED}`, `udp v4 ${OTHER}`, `udp v6 ${OTHER}`];

test(
  "under Bun the flush goes through ctnetlink: only the port's UDP entries go, both families",
  { skip: !haveBun },
  async () => {
    const ns = await withEntries("ctnl");
    assert.deepEqual(await entries(ns), ALL);
    const r = await runBun("conntrack-probe.ts", [String(FLUSHED)], { ns });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await entries(ns), AFTER);
  },
);

test("on Node (or an injected runner) the conntrack command does the same", async () => {
  const ns = await withEntries("ctcmd");
  assert.deepEqual(await entries(ns), ALL);
  const inNs: Runner = { run: (cmd) => systemRunner.run({ ...cmd, netns: ns.path }) };
  await flushUdpConntrack([FLUSHED], [4, 6], { commandPresent: true, runner: inNs });
  assert.deepEqual(await entries(ns), AFTER);
});

const COMPILED = join(ROOT, "dist", "compiled");

test(
  "a compiled portmap ADD flushes the UDP entries of its host port without starting conntrack",
  { skip: !existsSync(join(COMPILED, "cni-nft-plugins")) },
  async () => {
    const ns = await withEntries("ctpm");
    const dir = mkdtempSync(join(tmpdir(), "cni-nft-ct-"));
    const trace = join(dir, "trace");
    const conf = {
      cniVersion: "1.0.0",
      name: `ct${process.pid % 10000}`,
      type: "portmap",
      backend: "nftables",
      runtimeConfig: { portMappings: [{ hostPort: FLUSHED, containerPort: 53, protocol: "udp" }] },
      prevResult: {
        cniVersion: "1.0.0",
        interfaces: [{ name: "eth0", sandbox: "/var/run/netns/none" }],
        ips: [
          { address: "10.77.0.2/24", interface: 0 },
          { address: "fd77::2/64", interface: 0 },
        ],
      },
    };
    const call = { containerId: "ctr-ct", netns: "/var/run/netns/none", bin: COMPILED };
    try {
      await cniOk(ns, "portmap", "ADD", conf, {
        ...call,
        wrap: tracingExecs(trace),
      });
      const programs = programsStarted(trace);
      assert.ok(!programs.includes("conntrack"), programs.join(" "));
      assert.deepEqual(await entries(ns), AFTER);
      await cniOk(ns, "portmap", "DEL", conf, call);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
