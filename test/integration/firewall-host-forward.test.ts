/**
 * hostForward with real packets: a host whose forward path drops what it does not know, either an
 * nftables base chain with `policy drop` in the operator's own table, or iptables `FORWARD`
 * policy DROP as Docker sets it, with each firewall backend (nftables, iptables). Without
 * hostForward the backend's own accept does not get through (but for iptables rules against an
 * iptables policy, which need nothing); with it containers reach the outside; the accept goes with
 * the network's last container (DEL, or GC); CHECK reports it missing, ADD repairs it; bad config
 * is refused with code 7 before any change.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, link, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";
import { cni, cniOk, firewallState, tempDir } from "../helpers/cni.js";

const HOST_V4 = "203.0.113.1";
const OUT_V4 = "203.0.113.2";
const NFT_HOST = { nftables: { family: "inet", table: "hostfw", chain: "forward" } };

const ip4 = (r: Record<string, unknown>): string =>
  ((r["ips"] ?? []) as Array<{ address: string }>)[0]!.address.split("/")[0]!;

before(sweepStaleNamespaces);

const cases = [
  { policy: "nftables", backend: "nftables", n: 1 },
  { policy: "iptables", backend: "nftables", n: 2 },
  { policy: "nftables", backend: "iptables", n: 3 },
  { policy: "iptables", backend: "iptables", n: 4 },
] as const;

for (const { policy, backend, n } of cases) {
  describe(`firewall ${backend} backend, hostForward through a dropping ${policy} forward policy`, () => {
    const nets = new NetnsPool();
    const dir = tempDir(`hf-${n}`);
    let host: Netns, out: Netns, c1: Netns, c2: Netns;
    const servers: EchoServer[] = [];
    const network = `hf${process.pid}n${n}`;
    const subnet = `10.9${n}.0`;
    before(async () => {
      [host, out, c1, c2] = (await Promise.all(
        ["h", "o", "a", "b"].map((t) => nets.create(`hf${n}${t}`)),
      )) as [Netns, Netns, Netns, Netns];
      await link(host, "uplink", out, "eth0");
      await host.sh(["ip", "addr", "add", `${HOST_V4}/24`, "dev", "uplink"]);
      await out.sh(["ip", "addr", "add", `${OUT_V4}/24`, "dev", "eth0"]);
      await out.sh(["ip", "route", "add", `${subnet}.0/24`, "via", HOST_V4]);
      servers.push(await startEchoServer(out, "tcp", "0.0.0.0", 8080));
      if (policy === "iptables") await host.sh(["iptables", "-P", "FORWARD", "DROP"]);
      else
        await host.sh(
          ["nft", "-f", "-"],
          "table inet hostfw {\n chain forward {\n  type filter hook forward priority filter; policy drop;\n  ct state invalid drop\n }\n}\n",
        );
    });
    after(async () => {
      for (const s of servers) s.stop();
      await nets.destroyAll();
      dir.remove();
    });

    const hostForward = policy === "iptables" ? { iptables: true } : NFT_HOST;
    const fw = (prevResult: unknown, withHostForward: boolean): object => ({
      cniVersion: "1.1.0",
      name: network,
      type: "firewall",
      backend,
      ...(withHostForward ? { hostForward } : {}),
      prevResult,
    });
    const hostRules = async (): Promise<string> =>
      policy === "iptables"
        ? host.sh(["iptables-save", "-t", "filter"])
        : host.sh(["nft", "list", "chain", "inet", "hostfw", "forward"]);
    const ours = (text: string): number =>
      text.split("\n").filter((l) => /hostForward|net: hf\d+n\d/.test(l)).length;
    const reach = (ns: Netns, timeoutMs?: number): Promise<string | undefined> =>
      echo(ns, "tcp", OUT_V4, 8080, timeoutMs);

    test("dropped without it; through with it; removed with the network's last container", async () => {
      const bridge = {
        cniVersion: "1.1.0",
        name: network,
        type: "bridge",
        bridge: `hfbr${n}`,
        isGateway: true,
        ipam: {
          type: "host-local",
          dataDir: dir.path,
          subnet: `${subnet}.0/24`,
          routes: [{ dst: "0.0.0.0/0" }],
        },
      };
      const r1 = await cniOk(host, "bridge", "ADD", bridge, { containerId: "hf1", netns: c1.path });
      const r2 = await cniOk(host, "bridge", "ADD", bridge, { containerId: "hf2", netns: c2.path });

      await cniOk(host, "firewall", "ADD", fw(r1, false), { containerId: "hf1", netns: c1.path });
      if (!(policy === "iptables" && backend === "iptables"))
        assert.equal(await reach(c1, 1000), undefined, "the backend's own accept does not get through");
      else assert.equal(await reach(c1), ip4(r1), "upstream's rules sit in FORWARD before its policy");

      await cniOk(host, "firewall", "ADD", fw(r1, true), { containerId: "hf1", netns: c1.path });
      await cniOk(host, "firewall", "ADD", fw(r2, true), { containerId: "hf2", netns: c2.path });
      await cniOk(host, "firewall", "ADD", fw(r2, true), { containerId: "hf2", netns: c2.path });
      assert.equal(await reach(c1), ip4(r1));
      assert.equal(await reach(c2), ip4(r2));
      const expected = {
        "nftables nftables": 1,
        "iptables nftables": 1,
        "nftables iptables": 4,
        "iptables iptables": 0,
      };
      const rules = await hostRules();
      assert.equal(ours(rules), expected[`${policy} ${backend}`], rules);
      await cniOk(host, "firewall", "CHECK", fw(r1, true), { containerId: "hf1", netns: c1.path });

      // One container left: its traffic flows, the deleted one's does not.
      await cniOk(host, "firewall", "DEL", fw(r1, true), { containerId: "hf1", netns: c1.path });
      assert.equal(await reach(c2), ip4(r2));
      assert.equal(await reach(c1, 1000), undefined);

      // Damage to the host chain is reported by CHECK and repaired by ADD.
      if (policy === "nftables") {
        const listing = await host.sh(["nft", "-a", "list", "chain", "inet", "hostfw", "forward"]);
        for (const [, handle] of listing.matchAll(/comment "[0-9a-f]{16}[-,].*# handle (\d+)/g))
          await host.sh(["nft", "delete", "rule", "inet", "hostfw", "forward", "handle", handle!]);
        assert.equal(await reach(c2, 1000), undefined);
        const chk = await cni(host, "firewall", "CHECK", fw(r2, true), {
          containerId: "hf2",
          netns: c2.path,
        });
        assert.notEqual(chk.code, 0, chk.stdout);
        assert.match(chk.stdout, /hostForward: the accept.* in chain inet hostfw forward/);
        await cniOk(host, "firewall", "ADD", fw(r2, true), { containerId: "hf2", netns: c2.path });
        assert.equal(await reach(c2), ip4(r2));
      }

      await cniOk(host, "firewall", "DEL", fw(r2, true), { containerId: "hf2", netns: c2.path });
      assert.equal(ours(await hostRules()), 0, await hostRules());
      assert.equal(await reach(c2, 1000), undefined);
      await cniOk(host, "firewall", "DEL", fw(r2, true), { containerId: "hf2", netns: c2.path });

      // GC with no valid attachment left takes the accept away too.
      await cniOk(host, "firewall", "ADD", fw(r2, true), { containerId: "hf2", netns: c2.path });
      assert.equal(await reach(c2), ip4(r2));
      const gc = { ...fw(undefined, true), "cni.dev/valid-attachments": [] };
      await cniOk(host, "firewall", "GC", gc, { containerId: "" });
      if (backend === "nftables" || policy === "nftables") {
        assert.equal(ours(await hostRules()), 0, await hostRules());
        assert.equal(await reach(c2, 1000), undefined);
      }
      await cniOk(host, "firewall", "DEL", fw(r2, true), { containerId: "hf2", netns: c2.path });
      assert.equal(await reach(c2, 1000), undefined);
    });

    if (backend === "nftables")
      test("parallel ADDs and DELs of one network: one accept while any is left, none after", async () => {
        const ids = Array.from({ length: 8 }, (_, i) => `hfp${i}`);
        const prev = (i: number) => ({ cniVersion: "1.1.0", ips: [{ address: `${subnet}.${100 + i}/24` }] });
        const call = (verb: string, i: number) =>
          cniOk(host, "firewall", verb, fw(prev(i), true), { containerId: ids[i]!, netns: c1.path });
        await Promise.all(ids.map((_, i) => call("ADD", i)));
        assert.equal(ours(await hostRules()), 1, await hostRules());
        await Promise.all(ids.slice(1).map((_, i) => call("DEL", i + 1)));
        assert.equal(ours(await hostRules()), 1, await hostRules());
        await Promise.all([call("DEL", 0), call("ADD", 1)]);
        assert.equal(ours(await hostRules()), 1, "the ADD racing the last DEL keeps its accept");
        await call("DEL", 1);
        assert.equal(ours(await hostRules()), 0, await hostRules());
      });

    if (n === 1)
      test("config: refused with code 7 naming the field, before any change", async () => {
        const prev = { cniVersion: "1.1.0", ips: [{ address: `${subnet}.50/24` }] };
        const before = await firewallState(host);
        const bad: Array<[object, RegExp]> = [
          [{ nftables: { ...NFT_HOST.nftables, table: "a;b" } }, /hostForward\.nftables\.table/],
          [{ nftables: { ...NFT_HOST.nftables, chain: 'x" accept' } }, /hostForward\.nftables\.chain/],
          [{ nftables: { ...NFT_HOST.nftables, family: "bridge" } }, /hostForward\.nftables\.family/],
          [{ nftables: { ...NFT_HOST.nftables, table: "cni_nft_firewall" } }, /hostForward\.nftables\.table/],
          [
            { nftables: { ...NFT_HOST.nftables, chain: "nosuchchain" } },
            /hostForward\.nftables: chain inet hostfw nosuchchain/,
          ],
          [{ iptable: true }, /hostForward/],
          [{ iptables: "yes" }, /hostForward\.iptables/],
        ];
        for (const [hf, msg] of bad)
          for (const b of ["nftables", "iptables"]) {
            const conf = { ...fw(prev, false), backend: b, hostForward: hf };
            const r = await cni(host, "firewall", "ADD", conf, { containerId: "x", netns: c1.path });
            assert.equal(r.json?.["code"], 7, `${JSON.stringify(hf)}: ${r.stdout}`);
            assert.match(String(r.json?.["msg"]), msg);
          }
        assert.equal(await firewallState(host), before);
      });
  });
}
