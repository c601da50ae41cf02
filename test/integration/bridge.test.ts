/**
 * bridge with masquerade and spoof check, proved with real packets: containers reach a server in
 * an "outside" namespace that sees only the host's address; containers reach each other; a
 * container that changes its MAC is cut off; DEL leaves nothing; upstream's plugin can delete
 * what ours added and the other way round.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, link, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";
import { UPSTREAM_BIN, cni, cniOk, firewallState, tempDir } from "../helpers/cni.js";

const HOST_V4 = "203.0.113.1";
const OUT_V4 = "203.0.113.2";
const HOST_V6 = "2001:db8:1::1";
const OUT_V6 = "2001:db8:1::2";

interface Topology {
  host: Netns;
  out: Netns;
  c1: Netns;
  c2: Netns;
  server: EchoServer;
}

async function topology(nets: NetnsPool, tag: string): Promise<Topology> {
  const [host, out, c1, c2] = await Promise.all(["h", "o", "c1", "c2"].map((t) => nets.create(`${tag}${t}`)));
  await link(host!, "uplink", out!, "eth0");
  await host!.sh(["ip", "addr", "add", `${HOST_V4}/24`, "dev", "uplink"]);
  await host!.sh(["ip", "addr", "add", `${HOST_V6}/64`, "dev", "uplink", "nodad"]);
  await out!.sh(["ip", "addr", "add", `${OUT_V4}/24`, "dev", "eth0"]);
  await out!.sh(["ip", "addr", "add", `${OUT_V6}/64`, "dev", "eth0", "nodad"]);
  const server = await startEchoServer(out!, "tcp", "::", 8080);
  return { host: host!, out: out!, c1: c1!, c2: c2!, server };
}

function conf(backend: string, dataDir: string, extra: object = {}): object {
  return {
    cniVersion: "1.0.0",
    name: `net-${backend}`,
    type: "bridge",
    bridge: "cnibr0",
    isGateway: true,
    ipMasq: true,
    ipMasqBackend: backend,
    macspoofchk: true,
    ipam: {
      type: "host-local",
      dataDir,
      ranges: [[{ subnet: "10.77.0.0/24" }], [{ subnet: "fd77::/64" }]],
      routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
    },
    ...extra,
  };
}

/** IPAM is upstream's host-local here (exec delegation); our own host-local has its own tests. */
const IPAM_PATH = { path: UPSTREAM_BIN };

function ipsOf(result: Record<string, unknown>): string[] {
  return ((result["ips"] ?? []) as Array<{ address: string }>).map((i) => i.address.split("/")[0]!);
}

before(sweepStaleNamespaces);

for (const backend of ["nftables", "iptables"]) {
  describe(`bridge with ${backend} masquerade`, () => {
    const nets = new NetnsPool();
    const dir = tempDir(`br-${backend}`);
    let t: Topology;
    before(async () => {
      t = await topology(nets, backend.slice(0, 3));
    });
    after(async () => {
      t?.server.stop();
      await nets.destroyAll();
      dir.remove();
    });

    test("masquerade, container to container, spoof check, DEL leaves no trace", async () => {
      const c = conf(backend, dir.path);
      const r1 = await cniOk(t.host, "bridge", "ADD", c, {
        containerId: "ctr1",
        netns: t.c1.path,
        ...IPAM_PATH,
      });
      const stateWithOne = await firewallState(t.host);
      const r2 = await cniOk(t.host, "bridge", "ADD", c, {
        containerId: "ctr2",
        netns: t.c2.path,
        ...IPAM_PATH,
      });
      const [c1v4, c1v6] = ipsOf(r1);
      const [c2v4] = ipsOf(r2);
      assert.match(c1v4!, /^10\.77\.0\./);
      assert.match(c1v6!, /^fd77::/);

      // The outside server sees the host's address: masquerade proved by the server.
      assert.equal(await echo(t.c1, "tcp", OUT_V4, 8080), `::ffff:${HOST_V4}`);
      assert.equal(await echo(t.c1, "tcp", OUT_V6, 8080), HOST_V6);

      // Containers on one bridge reach each other, unmasqueraded.
      const peer = await startEchoServer(t.c2, "tcp", "::", 8081);
      try {
        assert.equal(await echo(t.c1, "tcp", c2v4!, 8081), `::ffff:${c1v4}`);
      } finally {
        peer.stop();
      }

      // A container that changes its MAC loses connectivity; the other keeps it.
      await t.c1.sh(["ip", "link", "set", "eth0", "address", "02:00:00:00:00:99"]);
      assert.equal(await echo(t.c1, "tcp", OUT_V4, 8080, 1500), undefined);
      assert.equal(await echo(t.c2, "tcp", OUT_V4, 8080), `::ffff:${HOST_V4}`);

      // CHECK passes while everything is there.
      const prev = { ...c, cniVersion: "1.0.0", prevResult: r2 };
      await cniOk(t.host, "bridge", "CHECK", prev, { containerId: "ctr2", netns: t.c2.path, ...IPAM_PATH });

      // DEL of the second container restores the state with one container; DEL twice is fine.
      await cniOk(t.host, "bridge", "DEL", prev, { containerId: "ctr2", netns: t.c2.path, ...IPAM_PATH });
      await cniOk(t.host, "bridge", "DEL", prev, { containerId: "ctr2", netns: t.c2.path, ...IPAM_PATH });
      assert.equal(await firewallState(t.host), stateWithOne);

      // DEL without prevResult and with the namespace gone still removes the rules.
      await cniOk(t.host, "bridge", "DEL", c, { containerId: "ctr1", netns: "", ...IPAM_PATH });
      const final = await firewallState(t.host);
      assert.doesNotMatch(final, /ctr1|ctr2/);
      assert.doesNotMatch(final, /masquerade comment|MASQUERADE/);
    });

    test("a bad ipMasqBackend is a config error and changes nothing", async () => {
      const before = await firewallState(t.host);
      const linksBefore = await t.host.sh(["ip", "-o", "link", "show"]);
      const r = await cni(t.host, "bridge", "ADD", conf("pf", dir.path), {
        containerId: "bad",
        netns: t.c1.path,
      });
      assert.notEqual(r.code, 0);
      assert.equal((r.json as { code?: number }).code, 7);
      assert.match(String((r.json as { msg?: string }).msg), /ipMasqBackend/);
      assert.equal(await firewallState(t.host), before);
      assert.equal(await t.host.sh(["ip", "-o", "link", "show"]), linksBefore);
    });
  });
}

describe("bridge mixed with upstream 1.1.1 (iptables)", () => {
  const nets = new NetnsPool();
  const dir = tempDir("br-mix");
  let t: Topology;
  before(async () => {
    t = await topology(nets, "mix");
  });
  after(async () => {
    t?.server.stop();
    await nets.destroyAll();
    dir.remove();
  });

  const c = (): object => ({
    ...conf("iptables", dir.path, { macspoofchk: false }),
    ipam: {
      type: "host-local",
      dataDir: dir.path,
      ranges: [[{ subnet: "10.78.0.0/24" }]],
      routes: [{ dst: "0.0.0.0/0" }],
    },
  });

  for (const [adder, deleter] of [
    ["upstream", "ours"],
    ["ours", "upstream"],
  ] as const) {
    test(`ADD by ${adder}, DEL by ${deleter}`, async () => {
      const baseline = await firewallState(t.host);
      const bin = (who: string): string | undefined => (who === "upstream" ? UPSTREAM_BIN : undefined);
      const path = UPSTREAM_BIN; // IPAM: upstream's host-local for both, so only bridge differs
      const r = await cniOk(t.host, "bridge", "ADD", c(), {
        containerId: `mix-${adder}`,
        netns: t.c1.path,
        bin: bin(adder),
        path,
      });
      assert.ok(ipsOf(r).length === 1);
      assert.equal(await echo(t.c1, "tcp", OUT_V4, 8080), `::ffff:${HOST_V4}`);
      await cniOk(
        t.host,
        "bridge",
        "DEL",
        { ...c(), prevResult: r },
        { containerId: `mix-${adder}`, netns: t.c1.path, bin: bin(deleter), path },
      );
      const after = await firewallState(t.host);
      assert.doesNotMatch(after, new RegExp(`mix-${adder}`));
      if (baseline.includes("*nat")) assert.equal(after, baseline);
    });
  }
});
