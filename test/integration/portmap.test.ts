/**
 * portmap with real packets, per backend and IP family: a "host" namespace with a bridge
 * (our bridge plugin, hairpin on), containers behind it, and an "outside" namespace on the
 * host's uplink. Also: GC, conditions per container, concurrent ADD/DEL, podman fixtures, mixing
 * with upstream 1.1.1's portmap, upstream nftables leftovers, and an injection corpus.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, link, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";
import { UPSTREAM_BIN, cni, cniOk, firewallState, loadFixtures, tempDir } from "../helpers/cni.js";

const HOST_V4 = "203.0.113.1";
const OUT_V4 = "203.0.113.2";
const HOST_V6 = "2001:db8:1::1";
const OUT_V6 = "2001:db8:1::2";
const IPAM_PATH = { path: UPSTREAM_BIN };

interface Topo {
  host: Netns;
  out: Netns;
  cs: Netns[];
  results: Array<Record<string, unknown>>;
  servers: EchoServer[];
}

function bridgeConf(dataDir: string, sub: number): object {
  return {
    cniVersion: "1.0.0",
    name: `pmnet${sub}`,
    type: "bridge",
    bridge: "pmbr0",
    isGateway: true,
    hairpinMode: true,
    ipam: {
      type: "host-local",
      dataDir,
      ranges: [[{ subnet: `10.${sub}.0.0/24` }], [{ subnet: `fd${sub}::/64` }]],
      routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
    },
  };
}

async function topology(
  nets: NetnsPool,
  tag: string,
  dataDir: string,
  sub: number,
  n: number,
): Promise<Topo> {
  const [host, out, ...cs] = await Promise.all(
    ["h", "o", ...Array.from({ length: n }, (_, i) => `c${i}`)].map((t) => nets.create(`${tag}${t}`)),
  );
  await link(host!, "uplink", out!, "eth0");
  await bridgeNf(host!, "0");
  await host!.sh(["ip", "addr", "add", `${HOST_V4}/24`, "dev", "uplink"]);
  await host!.sh(["ip", "addr", "add", `${HOST_V6}/64`, "dev", "uplink", "nodad"]);
  await out!.sh(["ip", "addr", "add", `${OUT_V4}/24`, "dev", "eth0"]);
  await out!.sh(["ip", "addr", "add", `${OUT_V6}/64`, "dev", "eth0", "nodad"]);
  const results: Array<Record<string, unknown>> = [];
  for (const [i, c] of cs.entries())
    results.push(
      await cniOk(host!, "bridge", "ADD", bridgeConf(dataDir, sub), {
        containerId: `${tag}-ctr${i}`,
        netns: c.path,
        ...IPAM_PATH,
      }),
    );
  const servers: EchoServer[] = [];
  for (const c of cs) {
    servers.push(await startEchoServer(c, "tcp", "::", 80));
    servers.push(await startEchoServer(c, "udp", "::", 53));
  }
  return { host: host!, out: out!, cs: cs, results, servers };
}

function ipsOf(result: Record<string, unknown>): string[] {
  return ((result["ips"] ?? []) as Array<{ address: string }>).map((i) => i.address.split("/")[0]!);
}

function pmConf(
  backend: string,
  sub: number,
  prev: Record<string, unknown> | undefined,
  portMappings: object[],
  extra: object = {},
): object {
  return {
    cniVersion: "1.1.0",
    name: `pmnet${sub}`,
    type: "portmap",
    backend,
    capabilities: { portMappings: true },
    runtimeConfig: { portMappings },
    ...(prev ? { prevResult: prev } : {}),
    ...extra,
  };
}

const v4 = (a: string): string => `::ffff:${a}`;

/** bridge-nf-call-iptables/ip6tables of a namespace (they exist when br_netfilter is loaded). */
async function bridgeNf(ns: Netns, value: string): Promise<void> {
  for (const f of ["iptables", "ip6tables"])
    await ns.run(["sysctl", "-q", "-w", `net.bridge.bridge-nf-call-${f}=${value}`]);
}

before(sweepStaleNamespaces);

for (const [bi, backend] of (["iptables", "nftables"] as const).entries()) {
  describe(`portmap ${backend}`, () => {
    const nets = new NetnsPool();
    const dir = tempDir(`pm-${backend}`);
    const sub = 81 + bi;
    let t: Topo;
    before(async () => {
      t = await topology(nets, `pm${backend.slice(0, 2)}`, dir.path, sub, 3);
    });
    after(async () => {
      for (const s of t?.servers ?? []) s.stop();
      await nets.destroyAll();
      dir.remove();
    });
    const call = (i: number): { containerId: string; netns: string } => ({
      containerId: `pm${backend.slice(0, 2)}-ctr${i}`,
      netns: t.cs[i]!.path,
    });

    test("outside, hairpin, same bridge, localhost, hostIP, UDP, snat off, CHECK, DEL, reuse", async () => {
      const baseline = await firewallState(t.host);
      const [c0v4, c0v6] = ipsOf(t.results[0]!);
      const [c1v4, c1v6] = ipsOf(t.results[1]!);
      const gw4 = `10.${sub}.0.1`;
      const m0 = [
        { hostPort: 8080, containerPort: 80, protocol: "tcp" },
        { hostPort: 5353, containerPort: 53, protocol: "udp" },
      ];
      const conf0 = pmConf(backend, sub, t.results[0], m0);
      const out0 = await cniOk(t.host, "portmap", "ADD", conf0, call(0));
      assert.deepEqual(out0, { ...t.results[0], cniVersion: "1.1.0" }, "prevResult passed through");
      // Second container: snat off, and a mapping only on the uplink address.
      const m1 = [
        { hostPort: 8081, containerPort: 80, protocol: "tcp" },
        { hostPort: 8082, containerPort: 80, protocol: "tcp", hostIP: HOST_V4 },
        { hostPort: 8082, containerPort: 80, protocol: "tcp", hostIP: HOST_V6 },
      ];
      const conf1 = pmConf(backend, sub, t.results[1], m1, { snat: false });
      await cniOk(t.host, "portmap", "ADD", conf1, call(1));

      // From outside: the container's server sees the client's own address.
      assert.equal(await echo(t.out, "tcp", HOST_V4, 8080), v4(OUT_V4));
      assert.equal(await echo(t.out, "tcp", HOST_V6, 8080), OUT_V6);
      assert.equal(await echo(t.out, "udp", HOST_V4, 5353), v4(OUT_V4));
      assert.equal(await echo(t.out, "udp", HOST_V6, 5353), OUT_V6);
      assert.equal(await echo(t.out, "tcp", HOST_V4, 8081), v4(OUT_V4));
      assert.equal(await echo(t.out, "tcp", HOST_V6, 8081), OUT_V6);
      assert.equal(await echo(t.out, "tcp", HOST_V4, 8082), v4(OUT_V4));
      assert.equal(await echo(t.out, "tcp", HOST_V6, 8082), OUT_V6);
      // Hairpin: the container reaches itself through the host (masqueraded to the gateway).
      assert.equal(await echo(t.cs[0]!, "tcp", HOST_V4, 8080), v4(gw4));
      assert.equal(await echo(t.cs[0]!, "tcp", HOST_V6, 8080), `fd${sub}::1`);
      // Another container on the same bridge, with bridge-nf-call-iptables 0 and 1.
      for (const bnf of ["0", "1"]) {
        await bridgeNf(t.host, bnf);
        assert.equal(await echo(t.cs[2]!, "tcp", HOST_V4, 8080), v4(gw4), `bridge-nf-call ${bnf}`);
        assert.equal(await echo(t.cs[2]!, "tcp", HOST_V6, 8080), `fd${sub}::1`, `bridge-nf-call ${bnf}`);
      }
      await bridgeNf(t.host, "0");
      // The host itself, to its own address and to 127.0.0.1 (route_localnet, masquerade).
      // (to its own address the source is that address, which needs no masquerade)
      assert.equal(await echo(t.host, "tcp", HOST_V4, 8080), v4(HOST_V4));
      assert.equal(await echo(t.host, "tcp", "127.0.0.1", 8080), v4(gw4));
      // hostIP mapping: only on that address.
      assert.equal(await echo(t.host, "tcp", "127.0.0.1", 8082, 1000), undefined);
      assert.notEqual(c0v4, c1v4);
      assert.ok(c0v6 && c1v6);

      await cniOk(t.host, "portmap", "CHECK", conf0, call(0));
      await cniOk(t.host, "portmap", "CHECK", conf1, call(1));

      // DEL (without prevResult), twice; the other container keeps its ports.
      const del0 = pmConf(backend, sub, undefined, m0);
      await cniOk(t.host, "portmap", "DEL", del0, call(0));
      await cniOk(t.host, "portmap", "DEL", del0, call(0));
      assert.equal(await echo(t.out, "tcp", HOST_V4, 8080, 1000), undefined);
      assert.equal(await echo(t.out, "tcp", HOST_V4, 8081), v4(OUT_V4));
      const ct = await t.host.run(["conntrack", "-L", "-p", "udp", "--orig-port-dst", "5353"]);
      assert.doesNotMatch(ct.stdout, /dport=5353/, "UDP conntrack entries of the removed mapping are gone");
      const chk = await cni(t.host, "portmap", "CHECK", conf0, call(0));
      assert.notEqual(chk.code, 0, "CHECK fails once the mappings are gone");

      // A new container on the same ports gets the traffic.
      const conf2 = pmConf(backend, sub, t.results[2], m0);
      await cniOk(t.host, "portmap", "ADD", conf2, call(2));
      const [c2v4] = ipsOf(t.results[2]!);
      assert.ok(c2v4);
      assert.equal(await echo(t.out, "tcp", HOST_V4, 8080), v4(OUT_V4));
      assert.equal(await echo(t.out, "udp", HOST_V4, 5353), v4(OUT_V4));

      await cniOk(t.host, "portmap", "DEL", conf1, call(1));
      await cniOk(t.host, "portmap", "DEL", conf2, call(2));
      const final = await firewallState(t.host);
      assert.doesNotMatch(final, /ctr[0-9]/);
      assert.doesNotMatch(final, /dnat to|DNAT --to/);
      // The subnet's masquerade chain and counter go with its last container.
      assert.doesNotMatch(final, /snat_sub[46]-/);
      assert.ok(baseline.length > 0);
    });

    test("GC removes mappings of attachments not in cni.dev/valid-attachments", async () => {
      const m = (p: number): object[] => [{ hostPort: p, containerPort: 80, protocol: "tcp" }];
      await cniOk(t.host, "portmap", "ADD", pmConf(backend, sub, t.results[0], m(9000)), call(0));
      await cniOk(t.host, "portmap", "ADD", pmConf(backend, sub, t.results[1], m(9001)), call(1));
      assert.ok(await echo(t.out, "tcp", HOST_V4, 9000));
      await cniOk(
        t.host,
        "portmap",
        "GC",
        {
          ...pmConf(backend, sub, undefined, []),
          "cni.dev/valid-attachments": [{ containerID: call(1).containerId, ifname: "eth0" }],
        },
        { containerId: "" },
      );
      assert.equal(await echo(t.out, "tcp", HOST_V4, 9000, 1000), undefined);
      assert.equal(await echo(t.out, "tcp", HOST_V4, 9001), v4(OUT_V4));
      const state = await firewallState(t.host);
      assert.doesNotMatch(state, new RegExp(`${call(0).containerId}\\\\?"`));
      await cniOk(t.host, "portmap", "DEL", pmConf(backend, sub, undefined, m(9001)), call(1));
    });

    test(`conditions apply per container (${backend} syntax)`, async () => {
      const conds =
        backend === "nftables"
          ? { conditionsV4: [`ip saddr 198.51.100.7`], conditionsV6: ["ip6 saddr 2001:db8:99::7"] }
          : { conditionsV4: ["-s", "198.51.100.7"], conditionsV6: ["-s", "2001:db8:99::7"] };
      const m = (p: number): object[] => [{ hostPort: p, containerPort: 80, protocol: "tcp" }];
      await cniOk(t.host, "portmap", "ADD", pmConf(backend, sub, t.results[0], m(9100), conds), call(0));
      await cniOk(t.host, "portmap", "ADD", pmConf(backend, sub, t.results[1], m(9101)), call(1));
      assert.equal(await echo(t.out, "tcp", HOST_V4, 9100, 1000), undefined, "condition excludes the client");
      assert.equal(await echo(t.out, "tcp", HOST_V6, 9100, 1000), undefined);
      assert.equal(await echo(t.out, "tcp", HOST_V4, 9101), v4(OUT_V4), "other container unaffected");
      // Conditions the client meets: DNATed (nftables: by the class's chain, after hostports),
      // on any local address and on a hostIP, IPv4 and IPv6.
      const meets =
        backend === "nftables"
          ? { conditionsV4: [`ip saddr ${OUT_V4}`], conditionsV6: [`ip6 saddr ${OUT_V6}`] }
          : { conditionsV4: ["-s", OUT_V4], conditionsV6: ["-s", OUT_V6] };
      const m2 = [...m(9102), { hostPort: 9103, containerPort: 80, protocol: "tcp", hostIP: HOST_V4 }];
      await cniOk(t.host, "portmap", "ADD", pmConf(backend, sub, t.results[2], m2, meets), call(2));
      assert.equal(await echo(t.out, "tcp", HOST_V4, 9102), v4(OUT_V4), "condition met");
      assert.equal(await echo(t.out, "tcp", HOST_V6, 9102), OUT_V6);
      assert.equal(await echo(t.out, "tcp", HOST_V4, 9103), v4(OUT_V4), "condition met, hostIP");
      assert.equal(
        await echo(t.out, "tcp", HOST_V4, 9100, 1000),
        undefined,
        "the other class still excludes",
      );
      await cniOk(t.host, "portmap", "CHECK", pmConf(backend, sub, t.results[0], m(9100), conds), call(0));
      await cniOk(t.host, "portmap", "CHECK", pmConf(backend, sub, t.results[2], m2, meets), call(2));
      if (backend === "nftables")
        assert.doesNotMatch(
          await firewallState(t.host),
          /guard[46]-|: jump /,
          "no chain or jump per container",
        );
      await cniOk(t.host, "portmap", "DEL", pmConf(backend, sub, undefined, m(9100), conds), call(0));
      await cniOk(t.host, "portmap", "DEL", pmConf(backend, sub, undefined, m(9101)), call(1));
      await cniOk(t.host, "portmap", "DEL", pmConf(backend, sub, undefined, m2, meets), call(2));
      assert.doesNotMatch(
        await firewallState(t.host),
        /198\.51\.100\.7|saddr 2001:db8:1::2|guard[46]-|cond[46]-|cond_/,
      );
    });

    test("concurrent ADD and DEL of different containers keep each other's mappings", async () => {
      const ids = Array.from({ length: 8 }, (_, i) => `par${i}`);
      const conf = (i: number, prev = true): object =>
        pmConf(backend, sub, prev ? t.results[i % 3] : undefined, [
          { hostPort: 9200 + i, containerPort: 80, protocol: "tcp" },
        ]);
      await Promise.all(
        ids.map((id, i) =>
          cniOk(t.host, "portmap", "ADD", conf(i), { containerId: id, netns: t.cs[i % 3]!.path }),
        ),
      );
      await Promise.all(
        ids
          .filter((_, i) => i % 2 === 0)
          .map((id) =>
            cniOk(t.host, "portmap", "DEL", conf(Number(id.slice(3)), false), { containerId: id }),
          ),
      );
      const state = await firewallState(t.host);
      for (const [i, id] of ids.entries()) {
        if (i % 2 === 0) assert.doesNotMatch(state, new RegExp(`${id}\\\\?"`));
        else assert.match(state, new RegExp(`${id}\\\\?"`));
      }
      if (backend === "iptables") {
        const v4rules = (await t.host.sh(["iptables-save", "-t", "nat"])).split("\n");
        assert.equal(
          v4rules.filter((l) => l.includes("-j CNI-HOSTPORT-MASQ")).length,
          1,
          "no duplicated shared rules",
        );
        assert.equal(
          v4rules.filter((l) => l.startsWith("-A PREROUTING") && l.includes("CNI-HOSTPORT-DNAT")).length,
          1,
        );
      }
      assert.equal(await echo(t.out, "tcp", HOST_V4, 9201), v4(OUT_V4));
      await Promise.all(
        ids
          .filter((_, i) => i % 2 === 1)
          .map((id) =>
            cniOk(t.host, "portmap", "DEL", conf(Number(id.slice(3)), false), { containerId: id }),
          ),
      );
      assert.doesNotMatch(await firewallState(t.host), /par[0-9]\\?"/);
    });
  });
}

describe("portmap: podman fixtures, upstream mixing, upstream nftables leftovers, refused input", () => {
  const nets = new NetnsPool();
  let host: Netns;
  before(async () => {
    host = await nets.create("pmfx");
  });
  after(() => nets.destroyAll());

  for (const backend of ["iptables", "nftables"]) {
    test(`podman 4.3 fixtures replay (${backend})`, async () => {
      const fixtures = loadFixtures("portmap");
      assert.ok(fixtures.length >= 3, "portmap fixtures present");
      const baseline = await firewallState(host);
      for (const { name, fx } of fixtures.filter((f) => f.fx.command === "ADD")) {
        const conf = { ...fx.stdin, backend };
        const r = await cni(host, "portmap", "ADD", conf, {
          containerId: fx.cni_env["CNI_CONTAINERID"]!,
          netns: fx.cni_env["CNI_NETNS"]!,
          args: fx.cni_env["CNI_ARGS"]!,
        });
        assert.equal(r.code, fx.exit_code, `${name}: ${r.stdout}`);
        assert.deepEqual(r.json, fx.stdout, name);
      }
      const state = await firewallState(host);
      assert.match(
        state,
        backend === "nftables" ? /127\.0\.0\.1 \. tcp \. 18083/ : /-d 127\.0\.0\.1\/32 -p tcp/,
      );
      for (const { fx } of fixtures.filter((f) => f.fx.command === "ADD")) {
        const r = await cni(
          host,
          "portmap",
          "DEL",
          { ...fx.stdin, backend },
          {
            containerId: fx.cni_env["CNI_CONTAINERID"]!,
            args: fx.cni_env["CNI_ARGS"]!,
          },
        );
        assert.equal(r.code, 0, r.stdout);
      }
      for (const { name, fx } of fixtures.filter((f) => f.fx.command === "DEL")) {
        const r = await cni(
          host,
          "portmap",
          "DEL",
          { ...fx.stdin, backend },
          {
            containerId: fx.cni_env["CNI_CONTAINERID"]!,
            args: fx.cni_env["CNI_ARGS"]!,
          },
        );
        assert.equal(r.code, fx.exit_code, name);
      }
      const final = await firewallState(host);
      assert.doesNotMatch(final, /dnat to|DNAT --to|id: "[0-9a-f]{64}"/);
      assert.ok(baseline !== undefined);
    });
  }

  const prev = {
    cniVersion: "0.4.0",
    interfaces: [{ name: "eth0", sandbox: "/run/netns/x" }],
    ips: [
      { version: "4", address: "10.85.0.5/24", interface: 0 },
      { version: "6", address: "fd85::5/64", interface: 0 },
    ],
  };
  const upConf = (mappings: object[]): object => ({
    cniVersion: "0.4.0",
    name: "mixnet",
    type: "portmap",
    runtimeConfig: { portMappings: mappings },
    prevResult: prev,
  });
  const mp = [
    { hostPort: 7080, containerPort: 80, protocol: "tcp" },
    { hostPort: 7053, containerPort: 53, protocol: "udp" },
  ];
  const save = async (): Promise<string> =>
    (await host.sh(["iptables-save", "-t", "nat"])) + (await host.sh(["ip6tables-save", "-t", "nat"]));
  const strip = (s: string): string =>
    s
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .join("\n");

  for (const [adder, deleter] of [
    ["upstream", "ours"],
    ["ours", "upstream"],
  ] as const) {
    test(`iptables: ADD by ${adder}, DEL by ${deleter}; both ADD the same rules`, async () => {
      const bin = (who: string): string | undefined => (who === "upstream" ? UPSTREAM_BIN : undefined);
      const id = `mix-${adder}`;
      await cniOk(host, "portmap", "ADD", upConf(mp), {
        containerId: id,
        netns: "/run/netns/x",
        bin: bin(adder),
      });
      const after1 = strip(await save());
      // The other one's ADD of the same container changes nothing: same rules, no duplicates.
      await cniOk(host, "portmap", "ADD", upConf(mp), {
        containerId: id,
        netns: "/run/netns/x",
        bin: bin(deleter),
      });
      assert.equal(strip(await save()), after1);
      // Ours checks what either wrote (upstream 1.1.1's own CHECK fails on dual-stack results).
      await cniOk(host, "portmap", "CHECK", upConf(mp), { containerId: id, netns: "/run/netns/x" });
      await cniOk(host, "portmap", "DEL", upConf(mp), { containerId: id, bin: bin(deleter) });
      assert.doesNotMatch(await save(), new RegExp(`${id}|CNI-DN-`));
    });
  }

  test("DEL removes rules upstream's nftables portmap left for the container", async () => {
    await host.sh(
      ["nft", "-f", "-"],
      `table ip cni_hostport {
  chain hostports {
    tcp dport 7081 dnat to 10.85.0.5:80 comment "leftover1"
    tcp dport 7082 dnat to 10.85.0.6:80 comment "keep2"
  }
  chain hostip_hostports {
  }
  chain masquerading {
    type nat hook postrouting priority srcnat
    ip saddr 10.85.0.5 ip daddr 10.85.0.5 masquerade comment "leftover1"
  }
}
table ip6 cni_hostport {
  chain hostports {
    tcp dport 7081 dnat to [fd85::5]:80 comment "leftover1"
  }
}
`,
    );
    await cniOk(host, "portmap", "DEL", { ...upConf(mp), backend: "nftables" }, { containerId: "leftover1" });
    const state = await firewallState(host);
    assert.doesNotMatch(state, /leftover1/);
    assert.match(state, /keep2/);
    await host.sh(["nft", "delete table ip cni_hostport; delete table ip6 cni_hostport"]);
  });

  test("injection corpus and invalid input: refused with code 7, ruleset unchanged", async () => {
    const baseline = await firewallState(host);
    const ok = { hostPort: 7090, containerPort: 80, protocol: "tcp" };
    const cases: Array<[string, object]> = [
      ["nft verdict", { backend: "nftables", conditionsV4: ["ip saddr 1.2.3.4 accept"] }],
      ["nft new command", { backend: "nftables", conditionsV4: ["ip saddr 1.2.3.4; flush ruleset"] }],
      ["nft newline", { backend: "nftables", conditionsV4: ["ip saddr 1.2.3.4\nflush ruleset"] }],
      ["nft comment", { backend: "nftables", conditionsV4: ["ip saddr 1.2.3.4 # x"] }],
      ["nft jump", { backend: "nftables", conditionsV4: ["jump hostports"] }],
      ["nft goto", { backend: "nftables", conditionsV6: ["goto postrouting"] }],
      ["nft set statement", { backend: "nftables", conditionsV4: ["meta mark set 1"] }],
      ["nft dnat", { backend: "nftables", conditionsV4: ["dnat to 1.2.3.4"] }],
      ["nft vmap", { backend: "nftables", conditionsV4: ["ip saddr vmap { 1.2.3.4 : drop }"] }],
      ["nft set ref", { backend: "nftables", conditionsV4: ["ip saddr @masq4"] }],
      ["nft brace", { backend: "nftables", conditionsV4: ["ip saddr { 1.2.3.4"] }],
      ["nft quote", { backend: "nftables", conditionsV4: ['iifname "x'] }],
      ["nft counter", { backend: "nftables", conditionsV4: ["counter"] }],
      ["nft log", { backend: "nftables", conditionsV4: ["log prefix x"] }],
      ["nft comment kw", { backend: "nftables", conditionsV4: ['comment "x"'] }],
      ["ipt jump", { backend: "iptables", conditionsV4: ["-j", "ACCEPT"] }],
      ["ipt goto", { backend: "iptables", conditionsV4: ["-g", "CNI-HOSTPORT-MASQ"] }],
      ["ipt long jump", { backend: "iptables", conditionsV4: ["--jump", "ACCEPT"] }],
      ["ipt newline", { backend: "iptables", conditionsV4: ["-s", "1.2.3.4\n-A INPUT -j DROP"] }],
      ["ipt quote", { backend: "iptables", conditionsV4: ["-s", '1.2.3.4" -j ACCEPT "'] }],
      ["ipt append", { backend: "iptables", conditionsV4: ["-A", "INPUT"] }],
      ["ipt table", { backend: "iptables", conditionsV4: ["-t", "filter"] }],
      ["ipt protocol", { backend: "iptables", conditionsV4: ["-p", "udp"] }],
      ["ipt set-mark", { backend: "iptables", conditionsV4: ["--set-xmark", "0x1"] }],
      ["mixed syntax", { backend: "iptables", conditionsV4: ["ip saddr 1.2.3.4"] }],
      ["mixed syntax 2", { backend: "nftables", conditionsV4: ["-s", "1.2.3.4"] }],
      ["externalSetMarkChain on nftables", { backend: "nftables", externalSetMarkChain: "X" }],
      ["markMasqBit with externalSetMarkChain", { markMasqBit: 5, externalSetMarkChain: "X" }],
      ["markMasqBit 32", { markMasqBit: 32 }],
      ["bad chain name", { externalSetMarkChain: "X -j ACCEPT" }],
      ["bad backend", { backend: "pf" }],
    ];
    const bad: Array<[string, object]> = [
      ["hostIP", { hostPort: 7091, containerPort: 80, protocol: "tcp", hostIP: "1.2.3.4; flush ruleset" }],
      ["protocol", { hostPort: 7091, containerPort: 80, protocol: "icmp" }],
      ["protocol injection", { hostPort: 7091, containerPort: 80, protocol: "tcp dport 1 accept" }],
      ["hostPort 0", { hostPort: 0, containerPort: 80, protocol: "tcp" }],
      ["hostPort 65536", { hostPort: 65536, containerPort: 80, protocol: "tcp" }],
      ["containerPort -1", { hostPort: 7091, containerPort: -1, protocol: "tcp" }],
      ["containerPort float", { hostPort: 7091, containerPort: 80.5, protocol: "tcp" }],
    ];
    const runs = [
      ...cases.map(([n, extra]) => [n, { ...upConf([ok]), ...extra }] as const),
      ...bad.flatMap(([n, m]) =>
        ["iptables", "nftables"].map((b) => [`${n} (${b})`, { ...upConf([ok, m]), backend: b }] as const),
      ),
    ];
    for (let i = 0; i < runs.length; i += 8)
      await Promise.all(
        runs.slice(i, i + 8).map(async ([n, conf]) => {
          const r = await cni(host, "portmap", "ADD", conf, { containerId: "inj", netns: "/run/netns/x" });
          assert.equal(r.code, 1, `${n}: refused`);
          assert.equal((r.json as { code?: number }).code, 7, `${n}: code 7, got ${r.stdout}`);
        }),
      );
    assert.equal(await firewallState(host), baseline);
  });
});
