/**
 * How fast `cni-nft migrate` moves a live host: N containers attached through the CLI (podman's
 * chain: bridge with ipMasq -> portmap with one host port -> firewall) on iptables, then migrate
 * to nftables and back, timed; figures per attachment. Runs in a throwaway "host" namespace.
 *
 *   node --import tsx bench/migrate.ts [containers=40] [parallel=4]
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchArgs, intArg } from "./lib/args.js";

const USAGE = `usage: node --import tsx bench/migrate.ts [containers] [parallel]
  containers  attached through the CLI before the moves (default 40)
  parallel    cni-nft migrate --parallel (default 4)`;
const { positionals } = benchArgs({ usage: USAGE, maxPositionals: 2 });
const N = intArg(USAGE, "containers", positionals[0], 40, 1);
const PARALLEL = intArg(USAGE, "parallel", positionals[1], 4, 1);
const ROOT = new URL("..", import.meta.url).pathname;
const BIN = join(ROOT, "dist", existsSync(join(ROOT, "dist/compiled/cni-nft-plugins")) ? "compiled" : "bin");
const HOST = `cni-nft-migbench-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), "cni-nft-migbench-"));
const env = {
  PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin",
  NETCONFPATH: join(dir, "net.d"),
  CNI_PATH: BIN,
  CNI_CACHE_DIR: join(dir, "cache"),
  CNI_NFT_NETWORKS_DIR: join(dir, "records"),
};
const network = `migbench${process.pid}`;

function cli(args: string[], extra: Record<string, string> = {}): string {
  return execFileSync("ip", ["netns", "exec", HOST, join(BIN, "cni-nft"), ...args], {
    env: { ...env, ...extra },
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
}

const namespaces: string[] = [];
try {
  execFileSync("ip", ["netns", "add", HOST]);
  mkdirSync(env.NETCONFPATH, { recursive: true });
  writeFileSync(
    join(env.NETCONFPATH, "10-bench.conflist"),
    JSON.stringify({
      cniVersion: "1.0.0",
      name: network,
      plugins: [
        {
          type: "bridge",
          bridge: "mbbr0",
          isGateway: true,
          ipMasq: true,
          ipam: { type: "host-local", dataDir: join(dir, "ipam"), ranges: [[{ subnet: "10.200.0.0/16" }]] },
        },
        { type: "portmap", capabilities: { portMappings: true } },
        { type: "firewall" },
      ],
    }),
  );
  for (let i = 0; i < N; i++) {
    const ns = `${HOST}-c${i}`;
    execFileSync("ip", ["netns", "add", ns]);
    namespaces.push(ns);
    cli(["add", network, `/run/netns/${ns}`], {
      CNI_CONTAINERID: `migbench-${i}`,
      CAP_ARGS: JSON.stringify({
        portMappings: [{ hostPort: 20000 + i, containerPort: 80, protocol: "tcp" }],
      }),
    });
  }
  const figures: Record<string, { seconds: number; perSecond: number }> = {};
  for (const to of ["nftables", "iptables", "nftables"]) {
    const r = JSON.parse(cli(["migrate", "--to", to, "--json", "--parallel", String(PARALLEL)])) as {
      ok: boolean;
      seconds: number;
      attachmentsPerSecond: number;
    };
    if (!r.ok) throw new Error(`migrate --to ${to} not ok`);
    figures[`to ${to}${figures[`to ${to}`] ? " again" : ""}`] = {
      seconds: r.seconds,
      perSecond: r.attachmentsPerSecond,
    };
  }
  const rerun = JSON.parse(cli(["migrate", "--to", "nftables", "--json"])) as { seconds: number };
  const restoreSecs = (() => {
    execFileSync("ip", ["netns", "exec", HOST, "nft", "flush", "ruleset"]);
    const t = process.hrtime.bigint();
    const r = spawnSync("ip", ["netns", "exec", HOST, join(BIN, "cni-nft"), "restore", "--json"], {
      env,
      encoding: "utf8",
      maxBuffer: 64 << 20,
    });
    const rep = JSON.parse(r.stdout) as {
      ok: boolean;
      attachments: Array<{ steps: Array<{ action: string; detail?: string }> }>;
    };
    const failed = rep.attachments.flatMap((a) => a.steps).filter((s) => s.action === "failed");
    if (failed.length) console.log(`restore: ${failed.length} failed, e.g. ${failed[0]!.detail}`);
    return Number(process.hrtime.bigint() - t) / 1e9;
  })();
  console.log(
    `migrate: ${N} attachments (bridge+ipMasq, portmap with 1 host port, firewall), --parallel ${PARALLEL}`,
  );
  for (const [k, f] of Object.entries(figures))
    console.log(`  ${k.padEnd(18)} ${f.seconds.toFixed(2)} s   ${f.perSecond.toFixed(1)} attachments/s`);
  console.log(`  rerun (no change)  ${rerun.seconds.toFixed(2)} s`);
  console.log(
    `  restore after nft flush ruleset: ${restoreSecs.toFixed(2)} s (${(N / restoreSecs).toFixed(1)} attachments/s)`,
  );
} finally {
  for (const ns of namespaces) spawnSync("ip", ["netns", "del", ns]);
  spawnSync("ip", ["netns", "del", HOST]);
  rmSync(dir, { recursive: true, force: true });
}
