/**
 * The firewall plugin with real packets, per backend: a host whose forward policy drops
 * (iptables `-P FORWARD DROP`, or an nftables host table that drops and accepts the plugin's
 * mark as docs/firewall.md tells operators), containers on two bridges made by our bridge plugin.
 * The plugin's accept makes container traffic flow; ingressPolicy same-bridge cuts the bridges
 * apart; DEL takes it away. Also: mixing with upstream 1.1.1's firewall (iptables) both ways,
 * podman's recorded calls replayed, config errors, GC.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, link, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";
import { UPSTREAM_BIN, cni, cniOk, firewallState, loadFixtures, tempDir } from "../helpers/cni.js";

const HOST_V4 = "203.0.113.1";
const OUT_V4 = "203.0.113.2";
const IPAM_PATH = { path: UPSTREAM_BIN };

function bridgeConf(dataDir: string, n: number): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name: `fwnet${n}`,
    type: "bridge",
    bridge: `fwbr${n}`,
    isGateway: true,
    ipam: {
      type: "host-local",
      dataDir,
      ranges: [[{ subnet: `10.8${n}.0.0/24` }]],
      routes: [{ dst: "0.0.0.0/0" }],
    },
  };
}

function fwConf(
  n: number,
  backend: string,
  prevResult?: unknown,
  extra: object = {},
): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name: `fwnet${n}`,
    type: "firewall",
    backend,
    ingressPolicy: "same-bridge",
    ...extra,
    ...(prevResult ? { prevResult } : {}),
  };
}

const ip4 = (r: Record<string, unknown>): string =>
  ((r["ips"] ?? []) as Array<{ address: string }>)[0]!.address.split("/")[0]!;

/** The host forward policy that drops, per backend: what an operator's firewall looks like. */
async function dropPolicy(host: Netns, backend: string): Promise<void> {
  if (backend === "iptables") {
    await host.sh(["iptables", "-P", "FORWARD", "DROP"]);
    return;
  }
  await host.sh(
    ["nft", "-f", "-"],
    `table inet hostfw {
       chain forward {
         type filter hook forward priority filter; policy drop;
         meta mark & 0x00001000 == 0x00001000 accept
       }
     }\n`,
  );
}

before(sweepStaleNamespaces);

for (const backend of ["iptables", "nftables"]) {
  describe(`firewall ${backend} backend with real packets`, () => {
    const nets = new NetnsPool();
    const dir = tempDir(`fw-${backend}`);
    let host: Netns, out: Netns, c1: Netns, c2: Netns, c3: Netns;
    const servers: EchoServer[] = [];
    before(async () => {
      [host, out, c1, c2, c3] = (await Promise.all(
        ["h", "o", "c1", "c2", "c3"].map((t) => nets.create(`fw${backend.slice(0, 2)}${t}`)),
      )) as [Netns, Netns, Netns, Netns, Netns];
      await link(host, "uplink", out, "eth0");
      await host.sh(["ip", "addr", "add", `${HOST_V4}/24`, "dev", "uplink"]);
      await out.sh(["ip", "addr", "add", `${OUT_V4}/24`, "dev", "eth0"]);
      await out.sh(["ip", "route", "add", "10.80.0.0/12", "via", HOST_V4]);
      servers.push(await startEchoServer(out, "tcp", "0.0.0.0", 8080));
    });
    after(async () => {
      for (const s of servers) s.stop();
      await nets.destroyAll();
      dir.remove();
    });

    test("accept through a dropping host, same-bridge isolation, CHECK, DEL", async () => {
      await dropPolicy(host, backend);
      const r1 = await cniOk(host, "bridge", "ADD", bridgeConf(dir.path, 1), {
        containerId: "a1",
        netns: c1.path,
        ...IPAM_PATH,
      });
      const r2 = await cniOk(host, "bridge", "ADD", bridgeConf(dir.path, 1), {
        containerId: "a2",
        netns: c2.path,
        ...IPAM_PATH,
      });
      const r3 = await cniOk(host, "bridge", "ADD", bridgeConf(dir.path, 2), {
        containerId: "b3",
        netns: c3.path,
        ...IPAM_PATH,
      });
      servers.push(
        await startEchoServer(c2, "tcp", "0.0.0.0", 8081),
        await startEchoServer(c3, "tcp", "0.0.0.0", 8082),
      );
      const baseline = await firewallState(host);

      // The host drops forwarded traffic: nothing flows yet.
      assert.equal(await echo(c1, "tcp", OUT_V4, 8080, 1000), undefined);

      const fw = async (n: number, id: string, ns: Netns, r: Record<string, unknown>): Promise<void> => {
        const out = await cniOk(host, "firewall", "ADD", fwConf(n, backend, r), {
          containerId: id,
          netns: ns.path,
        });
        assert.deepEqual(out, r, "prevResult is passed through unchanged");
      };
      await fw(1, "a1", c1, r1);
      await fw(1, "a2", c2, r2);
      await fw(2, "b3", c3, r3);

      // Accepted: out of the host, and to a container on the same bridge.
      assert.equal(await echo(c1, "tcp", OUT_V4, 8080), ip4(r1));
      assert.equal(await echo(c1, "tcp", ip4(r2), 8081), ip4(r1));
      // same-bridge: a container on the other bridge is cut off, both ways.
      assert.equal(await echo(c1, "tcp", ip4(r3), 8082, 1000), undefined);
      assert.equal(await echo(c3, "tcp", ip4(r2), 8081, 1000), undefined);
      assert.equal(await echo(c3, "tcp", OUT_V4, 8080), ip4(r3));

      // CHECK passes; after DEL of c1 its traffic is dropped again, the others keep flowing.
      await cniOk(host, "firewall", "CHECK", fwConf(1, backend, r1), { containerId: "a1", netns: c1.path });
      await cniOk(host, "firewall", "DEL", fwConf(1, backend, r1), { containerId: "a1", netns: c1.path });
      await cniOk(host, "firewall", "DEL", fwConf(1, backend, r1), { containerId: "a1", netns: c1.path });
      const chk = await cni(host, "firewall", "CHECK", fwConf(1, backend, r1), {
        containerId: "a1",
        netns: c1.path,
      });
      assert.notEqual(chk.code, 0, "CHECK fails once the container's accept is gone");
      assert.match(chk.stdout, new RegExp(ip4(r1).replace(/\./g, "\\.")));
      assert.equal(await echo(c1, "tcp", OUT_V4, 8080, 1000), undefined);
      assert.equal(await echo(c2, "tcp", OUT_V4, 8080), ip4(r2));

      // The admin chain is the operator's: a drop there wins over the accept, and DEL keeps it.
      if (backend === "iptables") await host.sh(["iptables", "-A", "CNI-ADMIN", "-s", ip4(r2), "-j", "DROP"]);
      else
        await host.sh([
          "nft",
          "add",
          "rule",
          "inet",
          "cni_nft_firewall",
          "admin",
          "ip",
          "saddr",
          ip4(r2),
          "drop",
        ]);
      assert.equal(await echo(c2, "tcp", OUT_V4, 8080, 1000), undefined);
      await cniOk(host, "firewall", "DEL", fwConf(2, backend, r3), { containerId: "b3", netns: c3.path });
      await cniOk(host, "firewall", "ADD", fwConf(2, backend, r3), { containerId: "b3", netns: c3.path });
      const state = await firewallState(host);
      assert.match(
        state,
        backend === "iptables"
          ? /-A CNI-ADMIN -s 10\.81\.0\.\d+\/32 -j DROP/
          : /chain admin \{[^}]*ip saddr 10\.81\.0\.\d+ drop/,
      );

      // DEL without prevResult: nftables finds the elements by owner; iptables (as upstream) needs prevResult.
      await cniOk(host, "firewall", "DEL", fwConf(1, backend, backend === "nftables" ? undefined : r2), {
        containerId: "a2",
        netns: c2.path,
      });
      await cniOk(host, "firewall", "DEL", fwConf(2, backend, r3), { containerId: "b3", netns: c3.path });
      const final = await firewallState(host);
      for (const r of [r1, r2, r3])
        assert.doesNotMatch(
          final,
          new RegExp(
            `${ip4(r).replace(/\./g, "\\.")}(/32)? (-m conntrack|-j ACCEPT)|\\b${ip4(r).replace(/\./g, "\\.")} comment`,
          ),
        );
      // No owner element outlives its address (nftables: DEL deletes both by key, never listing).
      assert.doesNotMatch(final, /set owners \{[^}]*elements/);
      assert.notEqual(final, baseline); // chains and isolation stay, as upstream's do
    });
  });
}

describe("firewall iptables mixed with upstream 1.1.1", () => {
  const nets = new NetnsPool();
  let host: Netns;
  before(async () => {
    host = await nets.create("fwmix");
  });
  after(() => nets.destroyAll());

  const prev = {
    cniVersion: "1.0.0",
    interfaces: [{ name: "mixbr0" }, { name: "veth1" }, { name: "eth0", sandbox: "/x" }],
    ips: [
      { address: "10.90.0.5/24", interface: 2, gateway: "10.90.0.1" },
      { address: "fd90::5/64", interface: 2, gateway: "fd90::1" },
    ],
  };
  const conf = (extra: object = {}): object => ({
    cniVersion: "1.0.0",
    name: "mix",
    type: "firewall",
    backend: "iptables",
    prevResult: prev,
    ...extra,
  });

  test("same rules as upstream; each deletes what the other added; CHECK across", async () => {
    const baseline = await firewallState(host);
    await cniOk(host, "firewall", "ADD", conf(), { containerId: "m1", netns: host.path, bin: UPSTREAM_BIN });
    const theirs = await firewallState(host);
    // Ours on top of upstream's adds nothing: the rules are the same.
    await cniOk(host, "firewall", "ADD", conf(), { containerId: "m1", netns: host.path });
    assert.equal(await firewallState(host), theirs);
    await cniOk(host, "firewall", "CHECK", conf(), { containerId: "m1", netns: host.path });
    await cniOk(host, "firewall", "DEL", conf(), { containerId: "m1", netns: host.path });
    const emptied = await firewallState(host);
    assert.doesNotMatch(emptied, /10\.90\.0\.5|fd90::5/);

    // Ours first, upstream deletes; upstream's CHECK accepts ours.
    await cniOk(host, "firewall", "ADD", conf(), { containerId: "m2", netns: host.path });
    assert.equal(await firewallState(host), theirs);
    await cniOk(host, "firewall", "CHECK", conf(), {
      containerId: "m2",
      netns: host.path,
      bin: UPSTREAM_BIN,
    });
    await cniOk(host, "firewall", "DEL", conf(), { containerId: "m2", netns: host.path, bin: UPSTREAM_BIN });
    assert.equal(await firewallState(host), emptied);
    assert.notEqual(emptied, baseline); // the chains stay, as upstream leaves them
  });

  test("upstream's isolation chains (from upstream's source; 1.1.1 predates ingressPolicy)", async () => {
    await cniOk(host, "firewall", "ADD", conf({ ingressPolicy: "isolated" }), {
      containerId: "m3",
      netns: host.path,
    });
    const saved = await host.sh(["iptables-save", "-t", "filter"]);
    const lines = saved.split("\n").filter((l) => l.startsWith("-A "));
    const c = (p: string): string => `-m comment --comment "CNI firewall plugin rules (ingressPolicy: ${p})"`;
    assert.deepEqual(
      lines.filter((l) => l.startsWith("-A FORWARD")),
      [
        `-A FORWARD ${c("same-bridge|isolated")} -j CNI-ISOLATION-STAGE-1`,
        `-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD`,
      ],
    );
    assert.deepEqual(
      lines.filter((l) => l.startsWith("-A CNI-ISOLATION")),
      [
        `-A CNI-ISOLATION-STAGE-1 -i mixbr0 -o mixbr0 ${c("isolated")} -j DROP`,
        `-A CNI-ISOLATION-STAGE-1 -i mixbr0 ! -o mixbr0 ${c("isolated")} -j CNI-ISOLATION-STAGE-2`,
        `-A CNI-ISOLATION-STAGE-1 ${c("same-bridge|isolated")} -j RETURN`,
        `-A CNI-ISOLATION-STAGE-2 -o mixbr0 ${c("same-bridge|isolated")} -j DROP`,
        `-A CNI-ISOLATION-STAGE-2 ${c("same-bridge|isolated")} -j RETURN`,
      ],
    );
    await cniOk(host, "firewall", "CHECK", conf({ ingressPolicy: "isolated" }), {
      containerId: "m3",
      netns: host.path,
    });
    await cniOk(host, "firewall", "DEL", conf({ ingressPolicy: "isolated" }), {
      containerId: "m3",
      netns: host.path,
    });
  });
});

describe("firewall: podman's calls, errors, GC", () => {
  const nets = new NetnsPool();
  let host: Netns;
  before(async () => {
    host = await nets.create("fwpod");
  });
  after(() => nets.destroyAll());

  test("podman 4.3 fixtures replayed: same output, DEL leaves the accept rules gone", async () => {
    const fixtures = loadFixtures("firewall");
    assert.ok(fixtures.length >= 2, "fixtures found");
    for (const { name, fx } of fixtures) {
      const r = await host.run([`${process.cwd()}/dist/bin/firewall`], {
        input: fx.stdin_raw,
        env: { PATH: process.env["PATH"], ...fx.cni_env, CNI_PATH: `${process.cwd()}/dist/bin` },
      });
      assert.equal(r.code, fx.exit_code, `${name}: ${r.stdout} ${r.stderr}`);
      if (fx.stdout) assert.deepEqual(JSON.parse(r.stdout), fx.stdout, name);
      else assert.equal(r.stdout.trim(), "", name);
    }
    assert.doesNotMatch(await firewallState(host), /10\.89\.77\.6/);
  });

  test("config errors: unknown backend and ingressPolicy, bad admin chain, no prevResult, no bridge", async () => {
    const prev = { cniVersion: "1.0.0", ips: [{ address: "10.91.0.5/24" }] };
    const before = await firewallState(host);
    for (const [extra, field] of [
      [{ backend: "pf", prevResult: prev }, /backend/],
      [{ ingressPolicy: "closed", prevResult: prev }, /ingressPolicy/],
      [{ iptablesAdminChainName: "A B; -F", prevResult: prev }, /iptablesAdminChainName/],
      [{}, /prevResult/],
      [{ ingressPolicy: "same-bridge", prevResult: prev }, /interface needs to be set/],
    ] as const) {
      const r = await cni(
        host,
        "firewall",
        "ADD",
        { cniVersion: "1.0.0", name: "e", type: "firewall", ...extra },
        { containerId: "e1", netns: host.path },
      );
      assert.notEqual(r.code, 0);
      assert.match(String((r.json as { msg?: string })?.msg), field);
    }
    // A prevResult of another version group than the config's is refused, as upstream's
    // ParsePrevResult refuses it (code 7 here, 999 upstream), before anything changes.
    const mixed = await cni(
      host,
      "firewall",
      "ADD",
      { cniVersion: "0.3.1", name: "e", type: "firewall", prevResult: prev },
      { containerId: "e1", netns: host.path },
    );
    assert.equal((mixed.json as { code?: number }).code, 7, mixed.stdout);
    assert.match(String((mixed.json as { msg?: string }).msg), /prevResult\.cniVersion is "1\.0\.0"/);
    assert.equal(await firewallState(host), before);
    const prev031 = { cniVersion: "0.3.1", ips: [{ version: "4", address: "10.91.0.5/24" }] };
    const v = await cni(
      host,
      "firewall",
      "ADD",
      { cniVersion: "0.3.1", name: "e", type: "firewall", prevResult: prev031 },
      { containerId: "e1", netns: host.path },
    );
    // Upstream refuses configs older than 0.4.0; ours takes every version (VERSION says so for all
    // plugins) and prints prevResult in the config's version.
    assert.equal(v.code, 0, v.stdout);
    assert.equal((v.json as { ips: Array<{ version?: string }> }).ips[0]!.version, "4");
    await cniOk(
      host,
      "firewall",
      "DEL",
      { cniVersion: "0.3.1", name: "e", type: "firewall", prevResult: prev031 },
      { containerId: "e1", netns: host.path },
    );
    assert.equal(await firewallState(host), before);
  });

  test("nftables GC removes elements of containers no longer valid", async () => {
    const mk = (a: string): object => ({
      cniVersion: "1.1.0",
      name: "gcnet",
      type: "firewall",
      backend: "nftables",
      prevResult: { cniVersion: "1.1.0", ips: [{ address: a }] },
    });
    await cniOk(host, "firewall", "ADD", mk("10.92.0.2/24"), { containerId: "g1", netns: host.path });
    await cniOk(host, "firewall", "ADD", mk("10.92.0.3/24"), { containerId: "g2", netns: host.path });
    await cniOk(
      host,
      "firewall",
      "ADD",
      { ...mk("10.92.0.4/24"), name: "othernet" },
      { containerId: "g3", netns: host.path },
    );
    await cniOk(
      host,
      "firewall",
      "GC",
      {
        cniVersion: "1.1.0",
        name: "gcnet",
        type: "firewall",
        backend: "nftables",
        "cni.dev/valid-attachments": [{ containerID: "g2", ifname: "eth0" }],
      },
      { containerId: "" },
    );
    const set = await host.sh(["nft", "list", "set", "inet", "cni_nft_firewall", "containers4"]);
    assert.doesNotMatch(set, /10\.92\.0\.2/);
    assert.match(set, /10\.92\.0\.3/);
    assert.match(set, /10\.92\.0\.4/);
  });
});
