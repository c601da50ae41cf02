/**
 * One container on two and three networks (bridge, ptp, mixed; podman's eth0/eth1 and Multus'
 * eth0/net1/net2 interface names), every network with a default route as podman writes them.
 * Upstream 1.1.1 is the oracle: the container's routes after each ADD and after the DEL of one
 * network must be exactly what upstream leaves in a twin container. Traffic is proved over every
 * interface, and a DEL of one network leaves the others working. One variant mixes upstream's
 * bridge and ours in one container.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";
import { OUR_BIN, UPSTREAM_BIN, cniOk, tempDir } from "../helpers/cni.js";

before(sweepStaleNamespaces);

interface Network {
  plugin: "bridge" | "ptp";
  ifname: string;
  /** Whose plugin sets it up in the container under test (the twin always runs upstream). */
  bin?: string;
}

interface Variant {
  title: string;
  networks: Network[];
  backend: "nftables" | "iptables";
}

const variants: Variant[] = [
  {
    title: "two bridge networks (podman eth0, eth1)",
    backend: "nftables",
    networks: [
      { plugin: "bridge", ifname: "eth0" },
      { plugin: "bridge", ifname: "eth1" },
    ],
  },
  {
    title: "two ptp networks (eth0, net1)",
    backend: "iptables",
    networks: [
      { plugin: "ptp", ifname: "eth0" },
      { plugin: "ptp", ifname: "net1" },
    ],
  },
  {
    title: "bridge, bridge, ptp (Multus eth0, net1, net2)",
    backend: "iptables",
    networks: [
      { plugin: "bridge", ifname: "eth0" },
      { plugin: "bridge", ifname: "net1" },
      { plugin: "ptp", ifname: "net2" },
    ],
  },
  {
    title: "ptp, bridge, bridge, the first by upstream",
    backend: "nftables",
    networks: [
      { plugin: "ptp", ifname: "eth0", bin: UPSTREAM_BIN },
      { plugin: "bridge", ifname: "eth1" },
      { plugin: "bridge", ifname: "eth2" },
    ],
  },
];

function conf(v: Variant, i: number, dataDir: string): Record<string, unknown> {
  const n = v.networks[i]!;
  return {
    cniVersion: "1.0.0", // upstream's host-local 1.1.1 (the IPAM here) stops at 1.0.0
    name: `multi${i}`,
    type: n.plugin,
    ipMasq: true,
    ipMasqBackend: v.backend,
    ...(n.plugin === "bridge" ? { bridge: `mnbr${i}`, isGateway: true } : {}),
    ipam: {
      type: "host-local",
      dataDir,
      ranges: [[{ subnet: `10.67.${i}.0/24` }], [{ subnet: `fd67:${i}::/64` }]],
      routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
    },
  };
}

/** The container's routes of both families, without what the kernel adds for every link. */
async function routes(ns: Netns): Promise<string> {
  const v4 = await ns.sh(["ip", "route", "show", "table", "all"]);
  const v6 = await ns.sh(["ip", "-6", "route", "show", "table", "all"]);
  return (v4 + v6)
    .split("\n")
    .filter((l) => l && !/^(local|broadcast|multicast|fe80::\/64|anycast) /.test(l))
    .join("\n");
}

const addressOf = (r: Record<string, unknown>, v6: boolean): string =>
  (r["ips"] as Array<{ address: string }>)
    .map((i) => i.address.split("/")[0]!)
    .find((a) => a.includes(":") === v6)!;

const gatewayOf = (r: Record<string, unknown>, v6: boolean): string =>
  (r["ips"] as Array<{ address: string; gateway: string }>).find((i) => i.address.includes(":") === v6)!
    .gateway;

for (const v of variants) {
  describe(`a container on ${v.title}`, () => {
    const nets = new NetnsPool();
    const ours = tempDir("multi-ours");
    const twin = tempDir("multi-twin");
    let host: Netns, hostTwin: Netns, c: Netns, cTwin: Netns;
    let server: EchoServer | undefined;
    before(async () => {
      [host, hostTwin, c, cTwin] = (await Promise.all(
        ["h", "th", "c", "tc"].map((t) => nets.create(`multi${t}`)),
      )) as [Netns, Netns, Netns, Netns];
      server = await startEchoServer(host, "tcp", "::", 8090);
    });
    after(async () => {
      server?.stop();
      await nets.destroyAll();
      ours.remove();
      twin.remove();
    });

    test("routes as upstream leaves them, traffic over each network, DEL of one keeps the others", async () => {
      const call = (n: Network, ns: Netns, bin?: string) => ({
        containerId: "multi1",
        netns: ns.path,
        ifname: n.ifname,
        path: UPSTREAM_BIN,
        ...(bin ? { bin } : {}),
      });
      const results: Record<string, unknown>[] = [];
      for (const [i, n] of v.networks.entries()) {
        results.push(await cniOk(host, n.plugin, "ADD", conf(v, i, ours.path), call(n, c, n.bin ?? OUR_BIN)));
        await cniOk(hostTwin, n.plugin, "ADD", conf(v, i, twin.path), call(n, cTwin, UPSTREAM_BIN));
        assert.equal(await routes(c), await routes(cTwin), `routes after ADD of ${n.ifname}`);
      }

      // Each network carries traffic: the host sees the container's address on that network.
      const reachesEach = async (live: number[]): Promise<void> => {
        for (const i of live)
          for (const v6 of [false, true]) {
            const seen = await echo(c, "tcp", gatewayOf(results[i]!, v6), 8090);
            const want = addressOf(results[i]!, v6);
            assert.equal(seen, v6 ? want : `::ffff:${want}`, `traffic over ${v.networks[i]!.ifname}`);
          }
      };
      await reachesEach(v.networks.map((_, i) => i));
      for (const [i, n] of v.networks.entries())
        if (!n.bin)
          await cniOk(
            host,
            n.plugin,
            "CHECK",
            { ...conf(v, i, ours.path), prevResult: results[i] },
            call(n, c),
          );

      // DEL of the second network: the others keep their routes (as upstream) and their traffic.
      const gone = 1;
      const n = v.networks[gone]!;
      const delConf = { ...conf(v, gone, ours.path), prevResult: results[gone] };
      await cniOk(host, n.plugin, "DEL", delConf, call(n, c));
      await cniOk(hostTwin, n.plugin, "DEL", conf(v, gone, twin.path), call(n, cTwin, UPSTREAM_BIN));
      assert.equal(await routes(c), await routes(cTwin), `routes after DEL of ${n.ifname}`);
      assert.doesNotMatch(await c.sh(["ip", "-o", "link"]), new RegExp(`\\b${n.ifname}@`));
      await reachesEach(v.networks.map((_, i) => i).filter((i) => i !== gone));

      for (const [i, m] of v.networks.entries()) {
        await cniOk(
          host,
          m.plugin,
          "DEL",
          { ...conf(v, i, ours.path), prevResult: results[i] },
          call(m, c, m.bin),
        );
        await cniOk(hostTwin, m.plugin, "DEL", conf(v, i, twin.path), call(m, cTwin, UPSTREAM_BIN));
      }
      assert.equal(await routes(c), "");
      assert.equal((await host.sh(["ip", "-o", "link", "show", "type", "veth"])).trim(), "");
    });
  });
}
