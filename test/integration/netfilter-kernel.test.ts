/**
 * The same manager calls on each backend give the same verdicts for real packets: a router
 * namespace between a client and a server, TCP, UDP and ICMP through FORWARD with conntrack
 * states and sets (hash:net, hash:ip,port), DNAT and MASQUERADE, IPv6, then partial changes
 * (a set member, a NAT rule) applied on top. Nothing of the owner is left afterwards.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, link, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";
import {
  createNetfilterManager,
  translateSaveFile,
  type NetfilterManager,
} from "../../src/netfilter/index.js";
import { run } from "../helpers/netns.js";
import { NFTables } from "../../src/nftables/index.js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = process.getuid?.() === 0;
const OWNER = "nftest";

describe("netfilter manager on the kernel", { skip: !root && "needs root" }, () => {
  const nets = new NetnsPool();
  let client: Netns, router: Netns, server: Netns;
  const servers: EchoServer[] = [];

  before(async () => {
    await sweepStaleNamespaces();
    [client, router, server] = await Promise.all([
      nets.create("nfc"),
      nets.create("nfr"),
      nets.create("nfs"),
    ]);
    await link(client, "c0", router, "r-c");
    await link(router, "r-s", server, "s0");
    const addr = (ns: Netns, dev: string, a: string): Promise<string> =>
      ns.sh(["ip", "addr", "add", a, "dev", dev, ...(a.includes(":") ? ["nodad"] : [])]);
    await Promise.all([
      addr(client, "c0", "10.77.1.2/24"),
      addr(client, "c0", "fd77:1::2/64"),
      addr(router, "r-c", "10.77.1.1/24"),
      addr(router, "r-c", "fd77:1::1/64"),
      addr(router, "r-s", "10.77.2.1/24"),
      addr(router, "r-s", "fd77:2::1/64"),
      addr(server, "s0", "10.77.2.2/24"),
      addr(server, "s0", "fd77:2::2/64"),
    ]);
    for (const [ns, gw4, gw6] of [
      [client, "10.77.1.1", "fd77:1::1"],
      [server, "10.77.2.1", "fd77:2::1"],
    ] as const) {
      await ns.sh(["ip", "route", "add", "default", "via", gw4]);
      await ns.sh(["ip", "-6", "route", "add", "default", "via", gw6]);
    }
    await router.sh(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    for (const [proto, host, port] of [
      ["tcp", "10.77.2.2", 8080],
      ["tcp", "10.77.2.2", 8081],
      ["tcp", "10.77.2.2", 8082],
      ["udp", "10.77.2.2", 5353],
      ["udp", "10.77.2.2", 5354],
      ["tcp", "fd77:2::2", 8080],
      ["tcp", "fd77:2::2", 8082],
    ] as const)
      servers.push(await startEchoServer(server, proto, host, port));
  });
  after(async () => {
    for (const s of servers) s.stop();
    await nets.destroyAll();
  });

  /** The calls under test, the same for both backends. */
  function configure(m: NetfilterManager): void {
    m.setMembers("clients", 4, ["10.77.1.0/24"]);
    m.setMembers("svc", 4, ["10.77.2.2,udp:5353"], "hash:ip,port");
    m.setMembers("clients6", 6, ["fd77:1::/64"]);
    for (const [f, v6] of [
      [m.ipv4.filter, false],
      [m.ipv6.filter, true],
    ] as const) {
      f.addChain("fwd");
      f.addRule("FORWARD", "-j $fwd");
      f.addRule("fwd", "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT");
      f.addRule("fwd", "-m conntrack --ctstate INVALID -j DROP");
      f.addRule(
        "fwd",
        `-p tcp -m tcp --dport 8080 -m set --match-set ${v6 ? "clients6" : "clients"} src -m conntrack --ctstate NEW -j ACCEPT`,
      );
      f.addRule(
        "fwd",
        v6
          ? "-p ipv6-icmp -m icmp6 --icmpv6-type echo-request -j ACCEPT"
          : "-p icmp -m icmp --icmp-type echo-request -j ACCEPT",
      );
      if (!v6) {
        f.addRule("fwd", "-p tcp --dport 8081 -j REJECT --reject-with tcp-reset");
        f.addRule("fwd", "-m set --match-set svc dst,dst -j ACCEPT");
      }
      f.addRule("fwd", "-j DROP", { comment: "default deny" });
    }
    m.ipv4.nat.addRule(
      "PREROUTING",
      "-d 10.77.1.1/32 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.77.2.2:8080",
    );
  }

  async function ping(host: string): Promise<boolean> {
    return (await client.run(["ping", "-c1", "-W2", host])).code === 0;
  }

  /** Every probe's outcome: the address the server saw, or "blocked". */
  async function probe(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const seen = async (name: string, p: Promise<string | undefined | boolean>): Promise<void> => {
      const v = await p;
      out[name] = v === undefined || v === false ? "blocked" : v === true ? "ok" : v;
    };
    await seen("tcp 8080", echo(client, "tcp", "10.77.2.2", 8080, 5000));
    await seen("tcp 8081 (reset)", echo(client, "tcp", "10.77.2.2", 8081, 1500));
    await seen("tcp 8082 (dropped)", echo(client, "tcp", "10.77.2.2", 8082, 1500));
    await seen("udp 5353 (set)", echo(client, "udp", "10.77.2.2", 5353, 5000));
    await seen("udp 5354", echo(client, "udp", "10.77.2.2", 5354, 1500));
    await seen("icmp echo", ping("10.77.2.2"));
    await seen("dnat 9090", echo(client, "tcp", "10.77.1.1", 9090, 5000));
    await seen("tcp6 8080", echo(client, "tcp", "fd77:2::2", 8080, 5000));
    await seen("tcp6 8082", echo(client, "tcp", "fd77:2::2", 8082, 1500));
    await seen("icmpv6 echo", ping("fd77:2::2"));
    return out;
  }

  const verdicts: Record<string, Array<Record<string, string>>> = {};

  for (const backend of ["nftables", "iptables"] as const)
    test(`${backend}: verdicts for real packets, then partial changes`, { timeout: 240_000 }, async () => {
      const kernelNft = (): NFTables => new NFTables({ family: "ip", table: OWNER, netns: router.path });
      const m = createNetfilterManager({ owner: OWNER, backend, netns: router.path, nft: kernelNft() });
      configure(m);
      await m.apply();
      const first = await probe();
      assert.deepEqual(first, {
        "tcp 8080": "10.77.1.2",
        "tcp 8081 (reset)": "blocked",
        "tcp 8082 (dropped)": "blocked",
        "udp 5353 (set)": "10.77.1.2",
        "udp 5354": "blocked",
        "icmp echo": "ok",
        "dnat 9090": "10.77.1.2",
        "tcp6 8080": "fd77:1::2",
        "tcp6 8082": "blocked",
        "icmpv6 echo": "ok",
      });
      const counted = await m.getTrafficCounters("fwd", { family: 4 });
      assert.ok(counted && counted.packets > 0, `counters of fwd: ${JSON.stringify(counted)}`);

      // Partial: the client leaves the set, the router starts masquerading towards the server.
      m.setMembers("clients", 4, ["10.99.0.0/16"]);
      m.ipv4.nat.addRule("POSTROUTING", "-o r-s -j MASQUERADE");
      const stats = await m.apply();
      assert.equal(stats?.readState, false);
      const second = { tcp: await echo(client, "tcp", "10.77.2.2", 8080, 1500) };
      m.setMembers("clients", 4, ["10.77.1.2/32", "10.99.0.0/16"]);
      await m.apply();
      const third = { tcp: await echo(client, "tcp", "10.77.2.2", 8080, 5000) };
      assert.deepEqual([second, third], [{ tcp: undefined }, { tcp: "10.77.2.1" }]);
      verdicts[backend] = [first, { second: String(second.tcp), third: String(third.tcp) }];

      // A restarted owner finds its state and changes nothing.
      const again = createNetfilterManager({ owner: OWNER, backend, netns: router.path, nft: kernelNft() });
      configure(again);
      again.setMembers("clients", 4, ["10.77.1.2/32", "10.99.0.0/16"]);
      again.ipv4.nat.addRule("POSTROUTING", "-o r-s -j MASQUERADE");
      const restarted = await again.apply();
      assert.equal(restarted?.chainsChanged, 0);
      assert.equal(restarted?.setsChanged, 0);

      await again.destroy();
      const [ruleset, save, ipsets] = await Promise.all([
        router.sh(["nft", "list", "ruleset"]),
        router.sh(["iptables-save"]),
        router.sh(["ipset", "list", "-n"]),
      ]);
      assert.doesNotMatch(ruleset, new RegExp(`table ip6? ${OWNER}`));
      assert.doesNotMatch(save, new RegExp(OWNER));
      assert.equal(ipsets.trim(), "");
    });

  test("both backends gave the same verdicts", () => {
    assert.deepEqual(verdicts["nftables"], verdicts["iptables"]);
  });

  /** Rules both translators take, as iptables-save prints them (no sets: ipset-translate's go elsewhere). */
  const ORACLE = `# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:ALLOW - [0:0]
-A FORWARD -j ALLOW
-A ALLOW -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ALLOW -s 10.77.1.0/24 -p tcp -m tcp --dport 8080 -m conntrack --ctstate NEW -j ACCEPT
-A ALLOW -p tcp -m multiport --dports 8081,9999 -j REJECT --reject-with tcp-reset
-A ALLOW -p udp -m udp --dport 5353 -j ACCEPT
-A ALLOW -p icmp -m icmp --icmp-type echo-request -m limit --limit 100/sec -j ACCEPT
-A ALLOW -m mark --mark 0x1/0x1 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -d 10.77.1.1/32 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.77.2.2:8080
-A POSTROUTING -o r-s -p udp -j MASQUERADE
COMMIT
`;

  test(
    "the oracle: iptables-restore-translate's nft and ours give the same verdicts",
    { timeout: 240_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "nf-oracle-"));
      writeFileSync(join(dir, "rules.v4"), ORACLE);
      const theirs = await run(["iptables-restore-translate", "-f", join(dir, "rules.v4")]);
      rmSync(dir, { recursive: true, force: true });
      assert.equal(theirs.code, 0, theirs.stderr);
      assert.doesNotMatch(theirs.stdout, /^# -A/m, "iptables-restore-translate translated every rule");
      const ours = await translateSaveFile(ORACLE, "xlate");
      assert.deepEqual(ours.refused, []);
      const outcomes: Array<Record<string, string>> = [];
      for (const script of [theirs.stdout, ours.script]) {
        await router.sh(["nft", "flush", "ruleset"]);
        await router.sh(["nft", "-f", "-"], script);
        const seen = await probe();
        // The server sees the router for masqueraded UDP: the NAT rule ran.
        outcomes.push(seen);
      }
      await router.sh(["nft", "flush", "ruleset"]);
      assert.deepEqual(outcomes[1], outcomes[0]);
      assert.deepEqual(outcomes[0], {
        "tcp 8080": "10.77.1.2",
        "tcp 8081 (reset)": "blocked",
        "tcp 8082 (dropped)": "blocked",
        "udp 5353 (set)": "10.77.2.1",
        "udp 5354": "blocked",
        "icmp echo": "ok",
        "dnat 9090": "10.77.1.2",
        "tcp6 8080": "fd77:1::2",
        "tcp6 8082": "fd77:1::2",
        "icmpv6 echo": "ok",
      });
    },
  );
});
