/**
 * The flat masquerade layout (table inet cni_nft_masquerade, docs/bridge-ptp.md) on the kernel,
 * with real packets: an "outside" namespace that has a route back to the containers sees the
 * host's address while a container is masqueraded and the container's own address once its
 * masquerade is gone. The host-state step of bridge's DEL (removeVethState) is run on its own
 * so the container keeps its link and can prove it, with prevResult's addresses and without
 * (the record); the plugin's DEL is then checked to leave nothing. Containers in upstream's
 * layout (which is also cni-nft's previous one) keep working and are removed; with upstream's
 * current build (/tmp/upstream-cni/bin, optional) both plugins share a host and neither breaks
 * the other's containers.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { NetnsPool, link, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";
import { cni, cniOk, tempDir } from "../helpers/cni.js";
import { upstreamNftMasq } from "../helpers/upstream-layouts.js";
import { systemHost } from "../../src/hoststate/index.js";
import { removeVethState, setUpVethState } from "../../src/link/veth_state.js";

const HOST_V4 = "203.0.113.1";
const OUT_V4 = "203.0.113.2";
const HOST_V6 = "2001:db8:1::1";
const OUT_V6 = "2001:db8:1::2";
const UPSTREAM_CURRENT = "/tmp/upstream-cni/bin";
const NETWORK = "mflat";

const conf = (dataDir: string): Record<string, unknown> => ({
  cniVersion: "1.1.0", // GC
  name: NETWORK,
  type: "bridge",
  bridge: "mflatbr0",
  isGateway: true,
  ipMasq: true,
  ipMasqBackend: "nftables",
  ipam: {
    type: "host-local",
    dataDir,
    ranges: [[{ subnet: "10.79.0.0/24" }], [{ subnet: "fd79::/64" }]],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
  },
});

const ipsOf = (r: Record<string, unknown>): string[] =>
  ((r["ips"] ?? []) as Array<{ address: string }>).map((i) => i.address);
const bare = (cidr: string): string => cidr.split("/")[0]!;

before(sweepStaleNamespaces);

describe("masquerade, flat nftables layout, real packets", () => {
  const nets = new NetnsPool();
  const dir = tempDir("mflat");
  let host: Netns;
  let out: Netns;
  let server: EchoServer;
  const ctrs: Netns[] = [];

  before(async () => {
    [host, out] = await Promise.all([nets.create("mfh"), nets.create("mfo")]);
    for (let i = 0; i < 4; i++) ctrs.push(await nets.create(`mfc${i}`));
    await link(host, "uplink", out, "eth0");
    await host.sh(["ip", "addr", "add", `${HOST_V4}/24`, "dev", "uplink"]);
    await host.sh(["ip", "addr", "add", `${HOST_V6}/64`, "dev", "uplink", "nodad"]);
    await out.sh(["ip", "addr", "add", `${OUT_V4}/24`, "dev", "eth0"]);
    await out.sh(["ip", "addr", "add", `${OUT_V6}/64`, "dev", "eth0", "nodad"]);
    // A way back to the containers: without masquerade the outside sees their own addresses.
    await out.sh(["ip", "route", "add", "10.79.0.0/24", "via", HOST_V4]);
    await out.sh(["ip", "-6", "route", "add", "fd79::/64", "via", HOST_V6]);
    server = await startEchoServer(out, "tcp", "::", 8080);
  });
  after(async () => {
    server?.stop();
    await nets.destroyAll();
    dir.remove();
  });

  /**
   * What the outside sees of a container's connection, IPv4 and IPv6. The bridge's MAC is pinned
   * first: a bridge takes the lowest MAC of its ports, so a new container's port can change it
   * under the others' neighbour caches (seconds without connectivity, nothing to do with NAT).
   */
  const seen = async (c: Netns): Promise<[string | undefined, string | undefined]> => {
    await host.sh(["ip", "link", "set", "mflatbr0", "address", "02:00:00:79:00:01"]);
    return [await echo(c, "tcp", OUT_V4, 8080, 10_000), await echo(c, "tcp", OUT_V6, 8080, 10_000)];
  };
  const masqueraded: [string, string] = [`::ffff:${HOST_V4}`, HOST_V6];
  const table = async (): Promise<string> =>
    (await host.run(["nft", "list", "table", "inet", "cni_nft_masquerade"])).stdout;
  const upstreamTable = async (): Promise<string> =>
    (await host.run(["nft", "list", "table", "inet", "cni_plugins_masquerade"])).stdout;

  test("masqueraded after ADD; not any more once DEL's host-state step ran, with prevResult and with the record", async () => {
    const c = ctrs[0]!;
    const call = { containerId: "mf-ours", netns: c.path };
    const r = await cniOk(host, "bridge", "ADD", conf(dir.path), call);
    const [v4, v6] = ipsOf(r);
    assert.deepEqual(await seen(c), masqueraded);
    assert.match(
      await table(),
      new RegExp(`${bare(v4!).replace(/\./g, "\\.")} comment ".*id: mf-ours" : "masq4-`),
    );

    const hs = systemHost({ netns: host.path });
    const a = { network: NETWORK, containerId: "mf-ours", ifname: "eth0" };
    const plan = { ipMasq: true, backend: "nftables" as const, addresses: [v4!, v6!] };
    await removeVethState(hs, a, { ipMasq: true, spoof: false, addresses: [v4!, v6!] });
    assert.deepEqual(await seen(c), [`::ffff:${bare(v4!)}`, bare(v6!)], "prevResult's keys: not masqueraded");

    await setUpVethState(hs, a, plan);
    assert.deepEqual(await seen(c), masqueraded);
    await removeVethState(hs, a, { ipMasq: true, spoof: false });
    assert.deepEqual(await seen(c), [`::ffff:${bare(v4!)}`, bare(v6!)], "the record's keys: not masqueraded");

    // The plugin's DELs (with prevResult, then without, as after a failed ADD) leave nothing.
    await setUpVethState(hs, a, plan);
    await cniOk(host, "bridge", "DEL", { ...conf(dir.path), prevResult: r }, call);
    assert.doesNotMatch(await table(), /mf-ours|masq4-|masq6-/);
    const r2 = await cniOk(host, "bridge", "ADD", conf(dir.path), call);
    assert.deepEqual(await seen(c), masqueraded);
    await cniOk(host, "bridge", "DEL", conf(dir.path), { ...call, netns: "" });
    assert.doesNotMatch(await table(), /mf-ours|masq4-|masq6-/);
    assert.ok(ipsOf(r2).length === 2);
  });

  test("a container of upstream's (and cni-nft's previous) layout keeps working, CHECKs whole, and DEL without prevResult removes it", async () => {
    const c = ctrs[1]!;
    const call = { containerId: "mf-old", netns: c.path };
    const r = await cniOk(host, "bridge", "ADD", conf(dir.path), call);
    const addrs = ipsOf(r);
    // Its masquerade as the previous build wrote it: rules in upstream's table, no record.
    const hs = systemHost({ netns: host.path });
    const a = { network: NETWORK, containerId: "mf-old", ifname: "eth0" };
    await removeVethState(hs, a, { ipMasq: true, spoof: false, addresses: addrs });
    await host.sh(["nft", "-f", "-"], upstreamNftMasq(a, addrs));
    assert.deepEqual(await seen(c), masqueraded);
    await cniOk(host, "bridge", "CHECK", { ...conf(dir.path), prevResult: r }, call);

    // A new container beside it goes to cni-nft's table and leaves upstream's alone.
    const before = await upstreamTable();
    const n = ctrs[2]!;
    const rn = await cniOk(host, "bridge", "ADD", conf(dir.path), {
      ...call,
      containerId: "mf-new",
      netns: n.path,
    });
    assert.equal(await upstreamTable(), before);
    assert.deepEqual(await seen(n), masqueraded);
    assert.deepEqual(await seen(c), masqueraded);

    await removeVethState(hs, a, { ipMasq: true, spoof: false });
    assert.deepEqual(await seen(c), [`::ffff:${bare(addrs[0]!)}`, bare(addrs[1]!)]);
    assert.doesNotMatch(await upstreamTable(), /mf-old/);
    assert.deepEqual(await seen(n), masqueraded);
    await cniOk(host, "bridge", "DEL", conf(dir.path), call);
    await cniOk(
      host,
      "bridge",
      "DEL",
      { ...conf(dir.path), prevResult: rn },
      { ...call, containerId: "mf-new", netns: n.path },
    );
    assert.doesNotMatch((await table()) + (await upstreamTable()), /mf-old|mf-new/);
  });

  test(
    "mixed with upstream's current nftables masquerade: neither deletes or breaks the other's containers",
    { skip: !existsSync(`${UPSTREAM_CURRENT}/bridge`) && "no upstream build in /tmp/upstream-cni/bin" },
    async () => {
      const [cu, co, cu2] = [ctrs[1]!, ctrs[2]!, ctrs[3]!];
      const theirs = { bin: UPSTREAM_CURRENT, path: UPSTREAM_CURRENT };
      const ours = { path: UPSTREAM_CURRENT };
      const ru = await cniOk(host, "bridge", "ADD", conf(dir.path), {
        containerId: "mx-up",
        netns: cu.path,
        ...theirs,
      });
      const ro = await cniOk(host, "bridge", "ADD", conf(dir.path), {
        containerId: "mx-ours",
        netns: co.path,
        ...ours,
      });
      assert.deepEqual(await seen(cu), masqueraded);
      assert.deepEqual(await seen(co), masqueraded);
      // Upstream's ADD rewrites its base chain, its GC and DEL look at its chain: ours stays whole.
      const ru2 = await cniOk(host, "bridge", "ADD", conf(dir.path), {
        containerId: "mx-up2",
        netns: cu2.path,
        ...theirs,
      });
      const valid = [
        { containerID: "mx-up", ifname: "eth0" },
        { containerID: "mx-up2", ifname: "eth0" },
        { containerID: "mx-ours", ifname: "eth0" },
      ];
      await cniOk(
        host,
        "bridge",
        "GC",
        { ...conf(dir.path), "cni.dev/valid-attachments": valid },
        { containerId: "", ...theirs },
      );
      await cniOk(
        host,
        "bridge",
        "DEL",
        { ...conf(dir.path), prevResult: ru2 },
        { containerId: "mx-up2", netns: cu2.path, ...theirs },
      );
      assert.deepEqual(await seen(co), masqueraded);
      await cniOk(
        host,
        "bridge",
        "CHECK",
        { ...conf(dir.path), prevResult: ro },
        { containerId: "mx-ours", netns: co.path, ...ours },
      );
      // Ours: CHECK accepts upstream's container, GC keeps the valid ones, DEL removes upstream's.
      await cniOk(
        host,
        "bridge",
        "CHECK",
        { ...conf(dir.path), prevResult: ru },
        { containerId: "mx-up", netns: cu.path, ...ours },
      );
      await cniOk(
        host,
        "bridge",
        "GC",
        { ...conf(dir.path), "cni.dev/valid-attachments": valid },
        { containerId: "", ...ours },
      );
      assert.deepEqual(await seen(cu), masqueraded);
      assert.deepEqual(await seen(co), masqueraded);
      await cniOk(host, "bridge", "DEL", conf(dir.path), { containerId: "mx-up", netns: cu.path, ...ours });
      assert.doesNotMatch(await upstreamTable(), /mx-up/);
      assert.deepEqual(await seen(co), masqueraded);
      // Upstream's ADD after ours DELeted: still fine; ours DELs and leaves upstream's table working.
      const ru3 = await cniOk(host, "bridge", "ADD", conf(dir.path), {
        containerId: "mx-up3",
        netns: cu.path,
        ...theirs,
      });
      await cniOk(
        host,
        "bridge",
        "DEL",
        { ...conf(dir.path), prevResult: ro },
        { containerId: "mx-ours", netns: co.path, ...ours },
      );
      assert.doesNotMatch(await table(), /mx-ours/);
      assert.deepEqual(await seen(cu), masqueraded);
      await cniOk(
        host,
        "bridge",
        "DEL",
        { ...conf(dir.path), prevResult: ru3 },
        { containerId: "mx-up3", netns: cu.path, ...theirs },
      );
      assert.doesNotMatch((await table()) + (await upstreamTable()), /mx-/);
      const r = await cni(host, "bridge", "DEL", conf(dir.path), {
        containerId: "mx-up3",
        netns: "",
        ...ours,
      });
      assert.equal(r.code, 0, r.stdout);
    },
  );
});
