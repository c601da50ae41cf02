/**
 * Backend choice on real hosts, with binaries hidden from PATH: nft only -> nftables, iptables only
 * -> iptables, neither -> ADD refused (code 50) before anything changes; the network's record
 * (from `cni-nft migrate`) wins over the host default, an explicit backend over the record.
 * STATUS: the backend usable (a fake nft that the "kernel" refuses), host-local's exhausted pool.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, symlinkSync, writeFileSync, chmodSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { OUR_BIN, UPSTREAM_BIN, firewallState, tempDir } from "../helpers/cni.js";

const HIDDEN =
  /^(nft|(ip6?tables|iptables-legacy|ip6tables-legacy|iptables-nft|ip6tables-nft)(-save|-restore)?)$/;

/** A PATH directory with every tool of the system's PATH except the hidden frameworks. */
function pathWithout(dir: string, keep: { nft: boolean; iptables: boolean }): string {
  mkdirSync(dir, { recursive: true });
  const dirs = [
    dirname(process.execPath),
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
  ];
  for (const d of dirs) {
    if (!existsSync(d)) continue;
    for (const name of readdirSync(d)) {
      if (existsSync(join(dir, name))) continue;
      if (HIDDEN.test(name)) {
        const isNft = name === "nft";
        if (!(isNft ? keep.nft : keep.iptables)) continue;
      }
      symlinkSync(join(d, name), join(dir, name));
    }
  }
  return dir;
}

describe("backend choice with binaries hidden from PATH", () => {
  const nets = new NetnsPool();
  const tmp = tempDir("choice");
  let host: Netns;
  let ctr: Netns;
  const paths: Record<string, string> = {};
  before(async () => {
    await sweepStaleNamespaces();
    host = await nets.create("bch");
    ctr = await nets.create("bcc");
    paths["none"] = pathWithout(join(tmp.path, "none"), { nft: false, iptables: false });
    paths["nft"] = pathWithout(join(tmp.path, "nft"), { nft: true, iptables: false });
    paths["ipt"] = pathWithout(join(tmp.path, "ipt"), { nft: false, iptables: true });
  });
  after(async () => {
    await nets.destroyAll();
    tmp.remove();
  });

  const run = async (
    plugin: string,
    verb: string,
    conf: object,
    path: string,
    extra: Record<string, string> = {},
  ): Promise<{ code: number; json: Record<string, unknown> | undefined; stdout: string }> => {
    const r = await host.run([`${OUR_BIN}/${plugin}`], {
      input: JSON.stringify(conf),
      env: {
        PATH: path,
        CNI_COMMAND: verb,
        CNI_CONTAINERID: "choice1",
        CNI_NETNS: ctr.path,
        CNI_IFNAME: "eth0",
        CNI_PATH: `${OUR_BIN}:${UPSTREAM_BIN}`,
        CNI_NFT_NETWORKS_DIR: join(tmp.path, "records"),
        CNI_NFT_STATE_DIR: "",
        ...extra,
      },
    });
    let json: Record<string, unknown> | undefined;
    try {
      json = JSON.parse(r.stdout) as Record<string, unknown>;
    } catch {
      json = undefined;
    }
    return { code: r.code, json, stdout: r.stdout };
  };
  const bridge = (name: string, extra: object = {}): object => ({
    cniVersion: "1.1.0",
    name,
    type: "bridge",
    bridge: "bcbr0",
    isGateway: true,
    ipMasq: true,
    ipam: { type: "host-local", dataDir: join(tmp.path, "ipam"), subnet: "10.77.0.0/24" },
    ...extra,
  });
  const prev = {
    cniVersion: "1.1.0",
    interfaces: [{ name: "eth0", sandbox: "/x" }],
    ips: [{ address: "10.77.0.9/24", interface: 0 }],
  };
  const portmap = {
    cniVersion: "1.1.0",
    name: "bcnet",
    type: "portmap",
    runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] },
    prevResult: prev,
  };
  const firewall = { cniVersion: "1.1.0", name: "bcnet", type: "firewall", prevResult: prev };

  test("neither nft nor iptables: ADD refused with code 50 before any change; STATUS says so", async () => {
    const before = await firewallState(host);
    const links = await host.sh(["ip", "-o", "link"]);
    for (const [plugin, conf] of [
      ["bridge", bridge("bcnet")],
      ["ptp", { ...bridge("bcnet"), type: "ptp" }],
      ["portmap", portmap],
      ["firewall", firewall],
    ] as const) {
      const r = await run(plugin, "ADD", conf, paths["none"]!);
      assert.equal(r.code, 1, `${plugin}: ${r.stdout}`);
      assert.equal(r.json?.["code"], 50, `${plugin}: ${r.stdout}`);
      assert.match(String(r.json?.["msg"]), /neither nftables \(nft\) nor iptables/);
      const s = await run(plugin, "STATUS", conf, paths["none"]!);
      assert.equal(s.json?.["code"], 50, `${plugin} STATUS: ${s.stdout}`);
    }
    assert.equal(await firewallState(host), before);
    assert.equal(await host.sh(["ip", "-o", "link"]), links);
    assert.ok(
      !existsSync(join(tmp.path, "ipam", "bcnet")) ||
        readdirSync(join(tmp.path, "ipam", "bcnet")).every((f) => !/^10\./.test(f)),
    );
    // DEL still succeeds: nothing to remove.
    for (const [plugin, conf] of [
      ["portmap", portmap],
      ["firewall", firewall],
    ] as const)
      assert.equal((await run(plugin, "DEL", conf, paths["none"]!)).code, 0, plugin);
  });

  test("nft only: every plugin writes nftables; iptables only: iptables; spoof check needs nft", async () => {
    for (const [plugin, conf] of [
      ["portmap", portmap],
      ["firewall", firewall],
    ] as const) {
      {
        const r = await run(plugin, "ADD", conf, paths["nft"]!);
        assert.equal(r.code, 0, `${plugin}: ${r.stdout}`);
      }
      {
        const s = await run(plugin, "STATUS", conf, paths["nft"]!);
        assert.equal(s.code, 0, `${plugin}: ${s.stdout}`);
      }
    }
    let state = await firewallState(host);
    assert.match(state, /table inet cni_nft_portmap/);
    assert.match(state, /table inet cni_nft_firewall/);
    assert.doesNotMatch(state, /CNI-HOSTPORT|CNI-FORWARD/);
    for (const [plugin, conf] of [
      ["portmap", portmap],
      ["firewall", firewall],
    ] as const)
      assert.equal((await run(plugin, "DEL", conf, paths["nft"]!)).code, 0, plugin);

    for (const [plugin, conf] of [
      ["portmap", portmap],
      ["firewall", firewall],
    ] as const)
      assert.equal((await run(plugin, "ADD", conf, paths["ipt"]!)).code, 0, plugin);
    state = await firewallState(host);
    assert.match(state, /CNI-HOSTPORT-DNAT/);
    assert.match(state, /CNI-FORWARD/);
    assert.doesNotMatch(state, /cni_nft_portmap \{[^}]*elements/);
    for (const [plugin, conf] of [
      ["portmap", portmap],
      ["firewall", firewall],
    ] as const)
      assert.equal((await run(plugin, "DEL", conf, paths["ipt"]!)).code, 0, plugin);

    const spoof = await run("bridge", "ADD", bridge("bcnet", { macspoofchk: true }), paths["ipt"]!);
    assert.equal(spoof.json?.["code"], 50, spoof.stdout);
    assert.match(String(spoof.json?.["msg"]), /macspoofchk: the nftables backend needs nft/);
  });

  test("the network's record wins over the host default; a configured backend over the record", async () => {
    const records = join(tmp.path, "records");
    mkdirSync(records, { recursive: true });
    writeFileSync(join(records, "bcrec.json"), JSON.stringify({ backend: "nftables", since: "" }));
    const full = process.env["PATH"]!;
    const conf = { ...portmap, name: "bcrec" };
    assert.equal((await run("portmap", "ADD", conf, full)).code, 0);
    assert.match(await firewallState(host), /10\.77\.0\.9 \. 80/);
    assert.equal((await run("portmap", "DEL", conf, full)).code, 0);
    assert.equal((await run("portmap", "ADD", { ...conf, backend: "iptables" }, full)).code, 0);
    assert.match(await host.sh(["iptables-save", "-t", "nat"]), /--to-destination 10\.77\.0\.9:80/);
    assert.equal((await run("portmap", "DEL", { ...conf, backend: "iptables" }, full)).code, 0);
  });

  test("STATUS: an nft the kernel refuses is reported with code 50 and the reason", async () => {
    const fake = join(tmp.path, "fakenft");
    pathWithout(fake, { nft: false, iptables: false });
    writeFileSync(
      join(fake, "nft"),
      '#!/bin/sh\necho "Error: Could not process rule: No such file or directory" >&2\nexit 1\n',
    );
    chmodSync(join(fake, "nft"), 0o755);
    const r = await run("portmap", "STATUS", { ...portmap, backend: "nftables" }, fake);
    assert.equal(r.json?.["code"], 50, r.stdout);
    assert.match(String(r.json?.["msg"]), /kernel refuses .*\(nat, masquerade, dnat, fib, ct\)/);
  });

  test("host-local STATUS: an exhausted range set answers code 50; free again after DEL", async () => {
    const ipam = { type: "host-local", dataDir: join(tmp.path, "small"), subnet: "10.78.0.0/30" };
    const conf = { cniVersion: "1.1.0", name: "bcsmall", ipam };
    const full = process.env["PATH"]!;
    assert.equal((await run("host-local", "STATUS", conf, full)).code, 0);
    assert.equal((await run("host-local", "ADD", conf, full)).code, 0);
    const s = await run("host-local", "STATUS", conf, full);
    assert.equal(s.json?.["code"], 50, s.stdout);
    assert.match(String(s.json?.["msg"]), /no IP addresses available in range set 0/);
    assert.equal((await run("host-local", "DEL", conf, full)).code, 0);
    assert.equal((await run("host-local", "STATUS", conf, full)).code, 0);
  });
});
