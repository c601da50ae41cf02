/**
 * A ruleset lost in part or in whole, on both backends: `nft flush table` of each of our tables
 * (rules gone, chains, sets, maps and elements kept), `nft flush chain` of a base chain,
 * `nft flush ruleset`, `iptables -t nat -F`, `iptables -F`. After each: CHECK of the container
 * already there fails and says what is missing, the next ADD (another container) repairs the
 * shared skeleton so its host port and masquerade work (real packets; the first container's too
 * where its own state survived), DEL of both succeeds, and nothing is left.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, link, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { tempDir } from "../helpers/cni.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";
import { chainAdd, chainCheck, chainConfs, chainDel, type Backend } from "../helpers/chain.js";
import { hostState, recordDirs, stateDiff } from "../helpers/state.js";

const HOST_V4 = "203.0.113.1";
const OUT_V4 = "203.0.113.2";

interface Damage {
  what: string;
  argv: string[][];
  /** Plugins whose CHECK must fail, and a word their message must have. */
  check: Array<[plugin: string, says: RegExp]>;
  /** The first container's own state survives (only rules of the skeleton went). */
  keepsOwnState: boolean;
}

const DAMAGES: Record<Backend, Damage[]> = {
  nftables: [
    {
      what: "nft flush table inet cni_nft_portmap",
      argv: [["nft", "flush", "table", "inet", "cni_nft_portmap"]],
      check: [["portmap", /rule "fib daddr type local jump hostports" in chain prerouting/]],
      keepsOwnState: true,
    },
    {
      what: "nft flush chain inet cni_nft_portmap prerouting",
      argv: [["nft", "flush", "chain", "inet", "cni_nft_portmap", "prerouting"]],
      check: [["portmap", /in chain prerouting of table inet cni_nft_portmap/]],
      keepsOwnState: true,
    },
    {
      what: "nft flush table inet cni_nft_masquerade",
      argv: [["nft", "flush", "table", "inet", "cni_nft_masquerade"]],
      check: [["bridge", /counter name ip saddr map @masq4 masquerade" in chain masq4-/]],
      keepsOwnState: true,
    },
    {
      what: "nft flush table inet cni_nft_firewall",
      argv: [["nft", "flush", "table", "inet", "cni_nft_firewall"]],
      check: [["firewall", /rule "jump isolation" in chain forward/]],
      keepsOwnState: true,
    },
    // A set or map flushed: the elements go, the owners set keeps their owner elements, which
    // DEL must delete too (deleteOwned; the state after DEL is compared with the baseline).
    {
      what: "nft flush map inet cni_nft_portmap dnat_any4",
      argv: [["nft", "flush", "map", "inet", "cni_nft_portmap", "dnat_any4"]],
      check: [["portmap", /of dnat_any4 in table inet cni_nft_portmap/]],
      keepsOwnState: false,
    },
    {
      what: "nft flush set inet cni_nft_firewall containers4",
      argv: [["nft", "flush", "set", "inet", "cni_nft_firewall", "containers4"]],
      check: [["firewall", /element 10\.245\.0\.\d+ of set containers4/]],
      keepsOwnState: false,
    },
    {
      what: "nft flush ruleset",
      argv: [["nft", "flush", "ruleset"]],
      check: [
        ["bridge", /masquerade/],
        ["portmap", /table inet cni_nft_portmap/],
        ["firewall", /table inet cni_nft_firewall/],
      ],
      keepsOwnState: false,
    },
  ],
  iptables: [
    {
      what: "iptables -t nat -F",
      argv: [["iptables", "-t", "nat", "-F"]],
      check: [
        ["bridge", /masquerade|CNI-/],
        ["portmap", /-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT/],
      ],
      keepsOwnState: false,
    },
    {
      what: "iptables -F",
      argv: [["iptables", "-F"]],
      check: [["firewall", /-j CNI-FORWARD/]],
      keepsOwnState: false,
    },
  ],
};

before(sweepStaleNamespaces);

for (const backend of ["nftables", "iptables"] as Backend[])
  describe(`ruleset loss (${backend}): CHECK says what is missing, the next ADD repairs, DEL leaves nothing`, () => {
    const nets = new NetnsPool();
    const dir = tempDir(`loss-${backend}`);
    const servers: EchoServer[] = [];
    let host: Netns, out: Netns;
    let baseline = "";
    let n = 0;
    const confs = chainConfs({
      name: `loss${backend.slice(0, 3)}`,
      backend,
      dataDir: dir.path,
      subnet: backend === "nftables" ? "10.245.0.0/24" : "10.246.0.0/24",
    });
    const state = async (): Promise<string> =>
      (await hostState([host], [dir.path, ...recordDirs(host.path)])).replace(/^.*last_reserved_ip.*$/gm, "");

    /** A container with an echo server on port 80 and a host port, through the chain. */
    const container = async (): Promise<{
      a: { containerId: string; netns: string; hostPort: number };
      ns: Netns;
      result: unknown;
    }> => {
      const i = n++;
      const ns = await nets.create(`ls${i}`);
      const a = { containerId: `loss-${backend}-${i}`, netns: ns.path, hostPort: 18400 + i };
      const r = await chainAdd(host, confs, a);
      assert.equal(r.failed, undefined, `ADD: ${r.failed?.plugin}: ${r.failed?.result.stdout}`);
      servers.push(await startEchoServer(ns, "tcp", "0.0.0.0", 80));
      return { a, ns, result: r.result };
    };
    const works = async (c: { a: { hostPort: number }; ns: Netns }, what: string): Promise<void> => {
      assert.ok(await echo(out, "tcp", HOST_V4, c.a.hostPort), `${what}: host port ${c.a.hostPort}`);
      // The outside has no route to the containers: only masquerade gets an answer back.
      assert.equal(await echo(c.ns, "tcp", OUT_V4, 9000), HOST_V4, `${what}: masquerade`);
    };

    before(async () => {
      [host, out] = await Promise.all([
        nets.create(`lh${backend.slice(0, 3)}`),
        nets.create(`lo${backend.slice(0, 3)}`),
      ]);
      await link(host, "uplink", out, "eth0");
      await host.sh(["ip", "addr", "add", `${HOST_V4}/24`, "dev", "uplink"]);
      await out.sh(["ip", "addr", "add", `${OUT_V4}/24`, "dev", "eth0"]);
      await host.sh(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
      servers.push(await startEchoServer(out, "tcp", "0.0.0.0", 9000));
      // A container through the chain and back: the shared skeleton exists and stays.
      const warm = await container();
      assert.deepEqual(await chainDel(host, confs, warm.a, warm.result), []);
      baseline = await state();
    });
    after(async () => {
      for (const s of servers) s.stop();
      await nets.destroyAll();
      dir.remove();
    });

    for (const d of DAMAGES[backend])
      test(`after ${d.what}`, async () => {
        const first = await container();
        await works(first, "before the loss");
        for (const argv of d.argv) await host.sh(argv);

        const failed = await chainCheck(host, confs, first.a, first.result);
        for (const [plugin, says] of d.check) {
          const f = failed.find((x) => x.plugin === plugin);
          assert.ok(
            f,
            `${plugin} CHECK fails after ${d.what} (failed: ${failed.map((x) => x.plugin).join(", ")})`,
          );
          assert.match(
            typeof f.result.json?.["msg"] === "string" ? f.result.json["msg"] : f.result.stdout,
            says,
            `${plugin} CHECK says what is missing`,
          );
        }

        const second = await container();
        await works(second, `the ADD after ${d.what}`);
        assert.deepEqual(
          (await chainCheck(host, confs, second.a, second.result)).map(
            (f) => `${f.plugin}: ${f.result.stdout}`,
          ),
          [],
          "the repaired skeleton checks",
        );
        if (d.keepsOwnState) {
          await works(first, `the first container after the repairing ADD`);
          assert.deepEqual(
            (await chainCheck(host, confs, first.a, first.result)).map(
              (f) => `${f.plugin}: ${f.result.stdout}`,
            ),
            [],
          );
        }

        for (const c of [first, second])
          assert.deepEqual(await chainDel(host, confs, c.a, c.result), [], "DEL succeeds");
        const now = await state();
        assert.ok(now === baseline, `nothing left after ${d.what}\n${stateDiff(baseline, now)}`);
      });
  });
