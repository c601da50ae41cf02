/**
 * dhcp IPAM, ours against upstream 1.1.1's, in one run: ADD (a full DISCOVER/OFFER/REQUEST/ACK
 * through the daemon) and DEL (DHCPRELEASE) against Debian's dnsmasq in a server namespace, both
 * daemons side by side in a host namespace. Prints medians and the ratio ours/upstream.
 *
 *   node --import tsx bench/dhcp.ts [runs]
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { cni, OUR_BIN, tempDir, UPSTREAM_BIN } from "../test/helpers/cni.js";
import { NetnsPool } from "../test/helpers/netns.js";
import { startBackground, waitFor } from "../test/helpers/background.js";
import { startDhcpServer } from "../test/helpers/dnsmasq.js";
import { benchArgs, intArg } from "./lib/args.js";

const USAGE = `usage: node --import tsx bench/dhcp.ts [runs]
  runs  ADD/DEL pairs per implementation (default 10)`;
const { positionals } = benchArgs({ usage: USAGE, maxPositionals: 1 });
const RUNS = intArg(USAGE, "runs", positionals[0], 10, 1);
const ours =
  process.env["CNI_NFT_BIN"] ??
  (existsSync(join(OUR_BIN, "..", "compiled", "dhcp")) ? join(OUR_BIN, "..", "compiled") : OUR_BIN);
const nets = new NetnsPool();
const tmp = tempDir("bench-dhcp");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const host = await nets.create("bdh");
const server = await nets.create("bds");
const dnsmasq = await startDhcpServer(server, "192.168.212", tmp.path);
const procs = [
  dnsmasq,
  startBackground(
    host.argv([join(ours, "dhcp"), "daemon", "-socketpath", join(tmp.path, "ours.sock")]),
    join(tmp.path, "ours.log"),
  ),
  startBackground(
    host.argv([join(UPSTREAM_BIN, "dhcp"), "daemon", "-socketpath", join(tmp.path, "up.sock")]),
    join(tmp.path, "up.log"),
  ),
];
try {
  await waitFor("daemons", () =>
    existsSync(join(tmp.path, "ours.sock")) && existsSync(join(tmp.path, "up.sock")) ? true : undefined,
  );
  const rows: string[] = [];
  const figures: Record<string, { add: number; del: number }> = {};
  for (const [label, bin, sock] of [
    ["ours", ours, "ours.sock"],
    ["upstream", UPSTREAM_BIN, "up.sock"],
  ] as const) {
    const add: number[] = [];
    const del: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const c = await nets.create(`bc${label[0]}${i}`);
      const peer = `bv${process.pid % 1000}${label[0]}${i}`;
      await c.sh(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", server.name]);
      await server.sh(["ip", "link", "set", peer, "master", "br0", "up"]);
      const conf = {
        cniVersion: "1.0.0",
        name: "bench",
        type: "macvlan",
        ipam: { type: "dhcp", daemonSocketPath: join(tmp.path, sock) },
      };
      const call = { containerId: `b-${label}-${i}`, netns: c.path, bin };
      let t = performance.now();
      const r = await cni(host, "dhcp", "ADD", conf, call);
      add.push(performance.now() - t);
      if (r.code !== 0) throw new Error(`${label} ADD: ${r.stdout}${r.stderr}`);
      t = performance.now();
      await cni(host, "dhcp", "DEL", conf, call);
      del.push(performance.now() - t);
      await c.destroy();
    }
    figures[label] = { add: median(add), del: median(del) };
    rows.push(
      `${label.padEnd(9)} ADD ${median(add).toFixed(1).padStart(7)} ms   DEL ${median(del).toFixed(1).padStart(7)} ms`,
    );
  }
  console.log(`dhcp, median of ${RUNS} (dnsmasq --no-ping, same machine):`);
  for (const r of rows) console.log("  " + r);
  console.log(
    `  ratio ours/upstream: ADD ${(figures["ours"]!.add / figures["upstream"]!.add).toFixed(2)}, DEL ${(figures["ours"]!.del / figures["upstream"]!.del).toFixed(2)}`,
  );
} finally {
  await Promise.all(procs.map((p) => p.stop()));
  await nets.destroyAll();
  tmp.remove();
}
