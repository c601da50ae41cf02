/**
 * `cni-nft restore` after the host firewall lost everything: `nft flush ruleset` (what a restart
 * of nftables.service does before it loads its file) and `iptables -F; iptables -t nat -F`. Two
 * networks, one on iptables (the host default) and one on nftables (recorded by migrate), each a
 * container with masquerade, a host port, firewall accepts and the spoof check, on a host whose
 * iptables FORWARD policy is DROP (as Docker sets it; the nftables network gets through with
 * hostForward), so the firewall accepts are what lets traffic through. Traffic works again
 * afterwards (real packets: host ports, masquerade through the dropping policy, and a spoofed
 * source MAC dropped again), CHECK passes, and a second run adds nothing.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NetnsPool, link, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { OUR_BIN, ensureBuilt, firewallState, tempDir } from "../helpers/cni.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";

const CLI = join(OUR_BIN, "cni-nft");
const HOST_V4 = "203.0.113.1";
const OUT_V4 = "203.0.113.2";

before(async () => {
  await sweepStaleNamespaces();
  await ensureBuilt();
});

describe("cni-nft restore", () => {
  const nets = new NetnsPool();
  const tmp = tempDir("restore");
  const servers: EchoServer[] = [];
  let host: Netns, out: Netns;
  let env: Record<string, string>;
  const ctrs: Array<{ network: string; id: string; ns: Netns; port: number }> = [];
  /**
   * The host's own firewall, as Docker sets it: FORWARD drops what it does not know, and lets
   * connections to published (DNATed) ports through. Its service loads it again after a flush.
   */
  const hostFirewall = async (): Promise<void> => {
    await host.sh(["iptables", "-P", "FORWARD", "DROP"]);
    await host.sh(["iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"]);
  };
  const cli = async (args: string[], extra: Record<string, string> = {}): Promise<string> => {
    const r = await host.run([CLI, ...args], { env: { ...env, ...extra }, timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`cni-nft ${args.join(" ")}: ${r.code} ${r.stdout} ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    [host, out] = await Promise.all([nets.create("rsh"), nets.create("rso")]);
    await link(host, "uplink", out, "eth0");
    await host.sh(["ip", "addr", "add", `${HOST_V4}/24`, "dev", "uplink"]);
    await out.sh(["ip", "addr", "add", `${OUT_V4}/24`, "dev", "eth0"]);
    servers.push(await startEchoServer(out, "tcp", "0.0.0.0", 9000));
    const dirs = {
      conf: join(tmp.path, "net.d"),
      cache: join(tmp.path, "cache"),
      records: join(tmp.path, "rec"),
    };
    for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
    env = {
      PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      NETCONFPATH: dirs.conf,
      CNI_PATH: OUR_BIN,
      CNI_CACHE_DIR: dirs.cache,
      CNI_NFT_NETWORKS_DIR: dirs.records,
    };
    await hostFirewall();
    servers.push(await startEchoServer(host, "tcp", "0.0.0.0", 9200));
    for (const [i, network] of [`rs${process.pid}i`, `rs${process.pid}n`].entries()) {
      writeFileSync(
        join(dirs.conf, `${i}.conflist`),
        JSON.stringify({
          cniVersion: "1.0.0",
          name: network,
          plugins: [
            {
              type: "bridge",
              bridge: `rsbr${i}`,
              isGateway: true,
              ipMasq: true,
              macspoofchk: true,
              ipam: {
                type: "host-local",
                dataDir: join(tmp.path, "ipam"),
                ranges: [[{ subnet: `10.6${i}.0.0/24` }]],
                routes: [{ dst: "0.0.0.0/0" }],
              },
            },
            { type: "portmap", capabilities: { portMappings: true } },
            // hostForward: iptables FORWARD drops; the iptables backend's rules need nothing.
            { type: "firewall", hostForward: { iptables: true } },
          ],
        }),
      );
      // The second network is moved to nftables before its container is added (the record).
      if (i === 1) await cli(["migrate", "--to", "nftables", network]);
      const ns = await nets.create(`rsc${i}`);
      const port = 8300 + i;
      await cli(["add", network, ns.path], {
        CNI_CONTAINERID: `rs-c${i}`,
        CAP_ARGS: JSON.stringify({ portMappings: [{ hostPort: port, containerPort: 80, protocol: "tcp" }] }),
      });
      servers.push(await startEchoServer(ns, "tcp", "0.0.0.0", 80));
      ctrs.push({ network, id: `rs-c${i}`, ns, port });
    }
  });
  after(async () => {
    for (const s of servers) s.stop();
    await nets.destroyAll();
    tmp.remove();
  });

  /** Whether a frame from the first container with another source MAC gets to the host (its gateway). */
  const spoofedGetsThrough = async (): Promise<boolean> => {
    const c = ctrs[0]!;
    const mac = (await c.ns.sh(["cat", "/sys/class/net/eth0/address"])).trim();
    await c.ns.sh(["ip", "link", "set", "eth0", "address", "02:00:00:00:be:ef"]);
    // Both sides learn the new MAC again by ARP, whose frames the spoof check drops too.
    await host.sh(["ip", "neigh", "flush", "dev", "rsbr0"]);
    const through = (await echo(c.ns, "tcp", "10.60.0.1", 9200, 1500)) !== undefined;
    await c.ns.sh(["ip", "link", "set", "eth0", "address", mac]);
    await Promise.all([
      host.sh(["ip", "neigh", "flush", "dev", "rsbr0"]),
      c.ns.sh(["ip", "neigh", "flush", "dev", "eth0"]),
    ]);
    assert.ok(await echo(c.ns, "tcp", "10.60.0.1", 9200), "its own MAC gets through");
    return through;
  };

  const works = async (): Promise<void> => {
    for (const c of ctrs) {
      assert.ok(await echo(out, "tcp", HOST_V4, c.port), `host port ${c.port} of ${c.network}`);
      // The outside has no route to the containers: only masquerade gets an answer back.
      assert.equal(await echo(c.ns, "tcp", OUT_V4, 9000), HOST_V4, `masquerade of ${c.network}`);
      await cli(["check", c.network, c.ns.path], { CNI_CONTAINERID: c.id });
    }
  };

  for (const [kind, flush] of [
    ["nft flush ruleset (nftables.service restart)", [["nft", "flush", "ruleset"]]],
    [
      "iptables -F and -t nat -F",
      [
        ["iptables", "-F"],
        ["iptables", "-t", "nat", "-F"],
      ],
    ],
  ] as const) {
    test(`after ${kind}: traffic works again, a second run adds nothing`, async () => {
      await works();
      assert.equal(await spoofedGetsThrough(), false, "the spoof check drops another source MAC");
      for (const argv of flush) await host.sh([...argv]);
      // The host's firewall service loads its own rules again after the flush.
      await hostFirewall();
      const broken = await Promise.all(ctrs.map((c) => echo(out, "tcp", HOST_V4, c.port, 1000)));
      if (kind.startsWith("nft")) assert.deepEqual(broken, [undefined, undefined]);
      else assert.equal(broken[0], undefined, "the iptables network lost its host port");
      // Out through the dropping FORWARD: the firewall's accepts (and masquerade) are gone.
      const masq = await Promise.all(ctrs.map((c) => echo(c.ns, "tcp", OUT_V4, 9000, 1000)));
      assert.deepEqual(masq, [undefined, undefined], "both networks lost masquerade or accept");
      if (kind.startsWith("nft")) assert.equal(await spoofedGetsThrough(), true, "the spoof check is gone");

      const report = JSON.parse(await cli(["restore", "--json"])) as {
        repaired: number;
        ok: boolean;
        attachments: Array<{
          network: string;
          steps: Array<{ component: string; action: string; to?: string }>;
        }>;
      };
      assert.ok(report.ok);
      assert.ok(report.repaired > 0);
      const iptNet = report.attachments.find((a) => a.network === ctrs[0]!.network)!;
      assert.ok(
        iptNet.steps.some((s) => s.component === "portmap" && s.action === "repaired" && s.to === "iptables"),
      );
      await works();
      assert.equal(await spoofedGetsThrough(), false, "the spoof check is back");

      const settled = await firewallState(host);
      const again = JSON.parse(await cli(["restore", "--json"])) as { repaired: number };
      assert.equal(again.repaired, 0);
      assert.equal(await firewallState(host), settled);
    });
  }
});
