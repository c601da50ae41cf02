/**
 * bridge beyond the packet tests: every cniVersion, podman's real invocations replayed, 50
 * parallel ADDs and DELs, and input that must be refused before anything changes.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { echo, startEchoServer } from "../helpers/echo.js";
import {
  UPSTREAM_BIN,
  cni,
  cniOk,
  firewallState,
  loadFixtures,
  shape,
  storeFiles,
  tempDir,
} from "../helpers/cni.js";

before(sweepStaleNamespaces);

function conf(dataDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name: "extra",
    type: "bridge",
    bridge: "xbr0",
    isGateway: true,
    ipMasq: true,
    ipMasqBackend: "nftables",
    ipam: {
      type: "host-local",
      dataDir,
      ranges: [[{ subnet: "10.55.0.0/16" }]],
      routes: [{ dst: "0.0.0.0/0" }],
    },
    ...extra,
  };
}

describe("bridge: versions, fixtures, parallel, refusals", () => {
  const nets = new NetnsPool();
  const dir = tempDir("br-extra");
  let host: Netns;
  before(async () => {
    host = await nets.create("xh");
  });
  after(async () => {
    await nets.destroyAll();
    dir.remove();
  });

  test("every cniVersion upstream's IPAM supports gives a result in that version", async () => {
    const ns = await nets.create("xv");
    for (const version of ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]) {
      const c = conf(dir.path, { cniVersion: version });
      const r = await cniOk(host, "bridge", "ADD", c, {
        containerId: `v${version}`,
        netns: ns.path,
        path: UPSTREAM_BIN,
      });
      assert.equal(r["cniVersion"], version);
      if (version < "0.3.0") assert.ok(r["ip4"], `${version} has ip4`);
      else {
        const ip = (r["ips"] as Array<Record<string, unknown>>)[0]!;
        assert.equal("version" in ip, version < "1.0.0", `${version}: ips[].version`);
        assert.equal((r["interfaces"] as unknown[]).length, 3);
      }
      await cniOk(host, "bridge", "DEL", c, {
        containerId: `v${version}`,
        netns: ns.path,
        path: UPSTREAM_BIN,
      });
    }
  });

  test("podman 4.3's bridge invocations replay with results of the same shape", async () => {
    for (const { name, fx } of loadFixtures("bridge").filter((f) => f.fx.command === "ADD")) {
      const ns = await nets.create("xf");
      const stdin = { ...fx.stdin, ipam: { ...(fx.stdin["ipam"] as object), dataDir: dir.path } };
      const call = {
        containerId: fx.cni_env["CNI_CONTAINERID"]!,
        netns: ns.path,
        args: fx.cni_env["CNI_ARGS"]!,
        path: UPSTREAM_BIN,
      };
      const r = await cniOk(host, "bridge", "ADD", stdin, call);
      assert.deepEqual(shape(r), shape(fx.stdout), name);
      if (fx.cni_env["CNI_ARGS"]?.includes("MAC=")) {
        const mac = /MAC=([^;]+)/.exec(fx.cni_env["CNI_ARGS"])![1];
        assert.equal((r["interfaces"] as Array<{ mac: string }>)[2]!.mac, mac, `${name}: MAC from CNI_ARGS`);
        assert.match(JSON.stringify(r["ips"]), /10\.89\.77\.50\//, `${name}: IP from CNI_ARGS`);
      }
      const del = loadFixtures("bridge").find((f) => f.fx.command === "DEL")!.fx;
      await cniOk(host, "bridge", "DEL", { ...(del.stdin as object), ipam: stdin.ipam, prevResult: r }, call);
    }
    assert.doesNotMatch(await firewallState(host), /id: [0-9a-f]{64}/);
  });

  test("50 parallel ADDs then 50 parallel DELs leave no rule, link or reservation behind", async () => {
    const store = tempDir("br-par");
    try {
      const ns = await Promise.all(Array.from({ length: 50 }, (_, i) => nets.create(`xp${i}`)));
      const c = conf(store.path, { name: "par", bridge: "pbr0", macspoofchk: true });
      const results = await Promise.all(
        ns.map((n, i) =>
          cniOk(host, "bridge", "ADD", c, { containerId: `par${i}`, netns: n.path, path: UPSTREAM_BIN }),
        ),
      );
      const ips = results.map((r) => (r["ips"] as Array<{ address: string }>)[0]!.address);
      assert.equal(new Set(ips).size, 50, "no address handed out twice");
      const rules = await host.sh(["nft", "list", "ruleset"]);
      assert.equal(rules.match(/" : "masq4-[0-9a-f]{12}"/g)?.length, 50, "one masquerade element each");
      // One spoof-check MAC element each (bridge cni_nft_spoofcheck, set allowed).
      const macElement = /" \. ([0-9a-f]{2}:){5}[0-9a-f]{2} comment/g;
      assert.equal(rules.match(macElement)?.length, 50);
      await Promise.all(
        ns.map((n, i) =>
          cniOk(host, "bridge", "DEL", c, { containerId: `par${i}`, netns: n.path, path: UPSTREAM_BIN }),
        ),
      );
      const after = await firewallState(host);
      assert.doesNotMatch(after, /par\d+/);
      assert.doesNotMatch(after, /masquerade comment|: "masq4-/);
      assert.doesNotMatch(after, macElement);
      assert.deepEqual(
        Object.keys(storeFiles(`${store.path}/par`)).filter((f) => /^\d/.test(f)),
        [],
      );
      assert.equal((await host.sh(["ip", "-o", "link", "show", "master", "pbr0"])).trim(), "");
    } finally {
      store.remove();
    }
  });

  test("another address in the gateway's subnet: refused, or replaced with forceAddress", async () => {
    const h = await nets.create("xfa");
    const ns = await nets.create("xfc");
    await h.sh(["ip", "link", "add", "fabr0", "type", "bridge"]);
    await h.sh(["ip", "addr", "add", "10.55.0.99/16", "dev", "fabr0"]);
    const c = conf(dir.path, { name: "fa", bridge: "fabr0" });
    const refused = await cni(h, "bridge", "ADD", c, {
      containerId: "fa1",
      netns: ns.path,
      path: UPSTREAM_BIN,
    });
    assert.notEqual(refused.code, 0);
    assert.match(String((refused.json as { msg?: string }).msg), /forceAddress/);
    assert.doesNotMatch(await h.sh(["ip", "addr", "show", "fabr0"]), /10\.55\.0\.1\//);
    const forced = { ...c, forceAddress: true };
    await cniOk(h, "bridge", "ADD", forced, { containerId: "fa2", netns: ns.path, path: UPSTREAM_BIN });
    const addrs = await h.sh(["ip", "addr", "show", "fabr0"]);
    assert.match(addrs, /10\.55\.0\.1\/16/);
    assert.doesNotMatch(addrs, /10\.55\.0\.99/);
    await cniOk(h, "bridge", "DEL", forced, { containerId: "fa2", netns: ns.path, path: UPSTREAM_BIN });
  });

  test("vlan: containers on one VLAN reach each other, not a container on another", async (t) => {
    const h = await nets.create("xvl");
    const probe = await h.run(["ip", "link", "add", "vlprobe", "type", "bridge", "vlan_filtering", "1"]);
    if (probe.code !== 0) {
      t.skip("this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)");
      return;
    }
    const [a, b, other] = [await nets.create("xva"), await nets.create("xvb"), await nets.create("xvo")];
    const base = conf(dir.path, { name: "vl", bridge: "vlbr0", isGateway: false, ipMasq: false });
    const on = (vlan: number): Record<string, unknown> => ({ ...base, vlan, preserveDefaultVlan: false });
    const ra = await cniOk(h, "bridge", "ADD", on(100), {
      containerId: "va",
      netns: a.path,
      path: UPSTREAM_BIN,
    });
    const rb = await cniOk(h, "bridge", "ADD", on(100), {
      containerId: "vb",
      netns: b.path,
      path: UPSTREAM_BIN,
    });
    const bIp = (rb["ips"] as Array<{ address: string }>)[0]!.address.split("/")[0]!;
    await cniOk(h, "bridge", "ADD", on(200), { containerId: "vo", netns: other.path, path: UPSTREAM_BIN });
    const aIp = (ra["ips"] as Array<{ address: string }>)[0]!.address.split("/")[0]!;
    const server = await startEchoServer(a, "tcp", "0.0.0.0", 7000);
    try {
      assert.equal(await echo(b, "tcp", aIp, 7000), bIp);
      assert.equal(await echo(other, "tcp", aIp, 7000, 1500), undefined);
    } finally {
      server.stop();
    }
    assert.match(await h.sh(["bridge", "vlan", "show"]), /100/);
  });

  const refusals: Array<[string, Record<string, unknown>, { containerId?: string; args?: string }, number]> =
    [
      ["container ID with an nft command", {}, { containerId: 'x"; flush ruleset' }, 7],
      ["network name with a newline", { name: "a\nflush ruleset" }, {}, 7],
      ["bridge name with a quote", { bridge: 'br"0' }, {}, 7],
      ["bridge name too long", { bridge: "b".repeat(16) }, {}, 7],
      ["unknown ipMasqBackend", { ipMasqBackend: "ipchains" }, {}, 7],
      ["hairpin and promisc together", { hairpinMode: true, promiscMode: true }, {}, 7],
      ["MAC that is not one", {}, { args: "IgnoreUnknown=1;MAC=zz:zz" }, 7],
    ];
  for (const [what, extra, call, code] of refusals)
    test(`refused before any change: ${what}`, async () => {
      const ns = await nets.create("xr");
      const state = await firewallState(host);
      const links = await host.sh(["ip", "-o", "link"]);
      const r = await cni(host, "bridge", "ADD", conf(dir.path, extra), {
        containerId: call.containerId ?? "refused",
        netns: ns.path,
        path: UPSTREAM_BIN,
        ...(call.args ? { args: call.args } : {}),
      });
      assert.notEqual(r.code, 0);
      const err = r.json as { code?: number; msg?: string } | undefined;
      assert.ok(err?.code === code || (code === 7 && err?.code === 4), `${what}: ${r.stdout}`);
      assert.ok(err?.msg && !/at .*\.js:\d+/.test(err.msg), "a message, not a stack trace");
      assert.equal(await firewallState(host), state);
      assert.equal(await host.sh(["ip", "-o", "link"]), links);
      assert.equal((await ns.sh(["ip", "-o", "link"])).split("\n").filter(Boolean).length, 1);
    });
});
