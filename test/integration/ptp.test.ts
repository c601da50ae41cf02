/** ptp with masquerade, proved with real packets, for both backends and both IP families. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, link, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";
import { UPSTREAM_BIN, cniOk, firewallState, tempDir } from "../helpers/cni.js";

before(sweepStaleNamespaces);

for (const backend of ["nftables", "iptables"]) {
  describe(`ptp with ${backend} masquerade`, () => {
    const nets = new NetnsPool();
    const dir = tempDir(`ptp-${backend}`);
    let host: Netns, out: Netns, c1: Netns, c2: Netns;
    let server: EchoServer | undefined;
    before(async () => {
      [host, out, c1, c2] = (await Promise.all(
        ["h", "o", "1", "2"].map((t) => nets.create(`ptp${backend.slice(0, 3)}${t}`)),
      )) as [Netns, Netns, Netns, Netns];
      await link(host, "uplink", out, "eth0");
      await host.sh(["ip", "addr", "add", "203.0.113.1/24", "dev", "uplink"]);
      await host.sh(["ip", "addr", "add", "2001:db8:1::1/64", "dev", "uplink", "nodad"]);
      await out.sh(["ip", "addr", "add", "203.0.113.2/24", "dev", "eth0"]);
      await out.sh(["ip", "addr", "add", "2001:db8:1::2/64", "dev", "eth0", "nodad"]);
      server = await startEchoServer(out, "tcp", "::", 8080);
    });
    after(async () => {
      server?.stop();
      await nets.destroyAll();
      dir.remove();
    });

    test("containers reach the outside masqueraded and each other routed; DEL leaves no trace", async () => {
      const conf = {
        cniVersion: "1.0.0", // upstream's host-local 1.1.1 (the IPAM here) stops at 1.0.0
        name: `ptp-${backend}`,
        type: "ptp",
        ipMasq: true,
        ipMasqBackend: backend,
        mtu: 1400,
        ipam: {
          type: "host-local",
          dataDir: dir.path,
          ranges: [[{ subnet: "10.66.0.0/24" }], [{ subnet: "fd66::/64" }]],
          routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
        },
      };
      const before = await firewallState(host);
      const call = (id: string, ns: Netns): { containerId: string; netns: string; path: string } => ({
        containerId: id,
        netns: ns.path,
        path: UPSTREAM_BIN,
      });
      const r1 = await cniOk(host, "ptp", "ADD", conf, call("p1", c1));
      const r2 = await cniOk(host, "ptp", "ADD", conf, call("p2", c2));
      const ips = (r: Record<string, unknown>): string[] =>
        (r["ips"] as Array<{ address: string }>).map((i) => i.address.split("/")[0]!);
      assert.equal((r1["interfaces"] as unknown[]).length, 2);
      assert.equal(await echo(c1, "tcp", "203.0.113.2", 8080), "::ffff:203.0.113.1");
      assert.equal(await echo(c1, "tcp", "2001:db8:1::2", 8080), "2001:db8:1::1");
      const peer = await startEchoServer(c2, "tcp", "::", 8081);
      try {
        assert.equal(await echo(c1, "tcp", ips(r2)[0]!, 8081), `::ffff:${ips(r1)[0]}`);
      } finally {
        peer.stop();
      }
      await cniOk(host, "ptp", "CHECK", { ...conf, prevResult: r1 }, call("p1", c1));
      for (const [id, ns, r] of [
        ["p1", c1, r1],
        ["p2", c2, r2],
      ] as const) {
        await cniOk(host, "ptp", "DEL", { ...conf, prevResult: r }, call(id, ns));
        await cniOk(host, "ptp", "DEL", { ...conf, prevResult: r }, call(id, ns));
      }
      const after = await firewallState(host);
      assert.doesNotMatch(after, /id: \\?"?p[12]\b/);
      if (backend === "iptables") assert.equal(after, before.includes("*nat") ? before : after);
      assert.equal(
        (await host.sh(["ip", "-o", "link", "show", "type", "veth"])).split("\n").filter(Boolean).length,
        1,
      );
    });
  });
}
