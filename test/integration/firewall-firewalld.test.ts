/**
 * The firewall plugin's firewalld backend against a real firewalld (Debian's package): a private
 * D-Bus system bus and firewalld both run inside a namespace this test creates, and the plugin
 * reaches them through DBUS_SYSTEM_BUS_ADDRESS. Skipped where firewalld is not installed
 * (scripts/setup.sh installs it where no init system would start it on the host).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { recordDirs } from "../helpers/state.js";
import { join } from "node:path";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { OUR_BIN, ROOT, firewallState, tempDir } from "../helpers/cni.js";
import { onPath } from "../../src/iptables/iptables.js";

const skip = !onPath("firewalld") || !onPath("dbus-daemon") || !onPath("dbus-send");

function busConfig(socket: string): string {
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`;
}

describe("firewall firewalld backend against a real firewalld", { skip }, () => {
  const nets = new NetnsPool();
  const dir = tempDir("fwd");
  const socket = join(dir.path, "bus.sock");
  const busEnv = `unix:path=${socket}`;
  let ns: Netns;
  const procs: ChildProcess[] = [];
  let firewalld: ChildProcess | undefined;

  const start = (argv: string[]): ChildProcess => {
    const p = spawn("ip", ["netns", "exec", ns.name, ...argv], {
      env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: busEnv },
      stdio: "ignore",
    });
    procs.push(p);
    return p;
  };
  const dbus = (
    method: string,
    ...args: string[]
  ): Promise<{ code: number; stdout: string; stderr: string }> =>
    ns.run(
      [
        "dbus-send",
        "--system",
        "--print-reply",
        "--dest=org.fedoraproject.FirewallD1",
        "/org/fedoraproject/FirewallD1",
        method,
        ...args,
      ],
      { env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: busEnv } },
    );
  const query = async (zone: string, src: string): Promise<boolean> =>
    (
      await dbus("org.fedoraproject.FirewallD1.zone.querySource", `string:${zone}`, `string:${src}`)
    ).stdout.includes("boolean true");
  const plugin = (verb: string, conf: object, id: string, bus = busEnv) =>
    ns
      .run([join(OUR_BIN, "firewall")], {
        input: JSON.stringify(conf),
        env: {
          PATH: process.env["PATH"],
          DBUS_SYSTEM_BUS_ADDRESS: bus,
          CNI_COMMAND: verb,
          CNI_CONTAINERID: id,
          CNI_NETNS: ns.path,
          CNI_IFNAME: "eth0",
          CNI_PATH: OUR_BIN,
        },
      })
      .then((r) => ({ ...r, json: r.stdout ? (JSON.parse(r.stdout) as { msg?: string }) : {} }));
  const conf = (backend: string, address: string, extra: object = {}): object => ({
    cniVersion: "1.0.0",
    name: "fwdnet",
    type: "firewall",
    backend,
    ...extra,
    prevResult: {
      cniVersion: "1.0.0",
      ips: [{ address }, { address: address.replace("10.93.0.", "fd93::").replace("/24", "/64") }],
    },
  });

  before(async () => {
    await sweepStaleNamespaces();
    ns = await nets.create("fwd");
    writeFileSync(join(dir.path, "bus.conf"), busConfig(socket));
    start(["dbus-daemon", `--config-file=${join(dir.path, "bus.conf")}`, "--nofork", "--nopidfile"]);
    for (let i = 0; i < 50 && (await ns.run(["test", "-S", socket])).code !== 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    firewalld = start(["firewalld", "--nofork", "--nopid", "--log-target", "console"]);
    for (let i = 0; i < 120; i++) {
      if ((await dbus("org.fedoraproject.FirewallD1.getDefaultZone")).code === 0) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error("firewalld did not come up");
  });
  after(async () => {
    for (const p of procs) p.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    for (const p of procs) p.kill("SIGKILL");
    await nets.destroyAll();
    dir.remove();
  });

  test("ADD binds the addresses to the zone, CHECK verifies, DEL unbinds; auto picks firewalld", async () => {
    const r = await plugin("ADD", conf("firewalld", "10.93.0.5/24"), "d1");
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(await query("trusted", "10.93.0.5/32"));
    assert.ok(await query("trusted", "fd93::5/128"));
    assert.equal(
      (await plugin("ADD", conf("firewalld", "10.93.0.5/24"), "d1")).code,
      0,
      "already bound is fine",
    );
    assert.equal((await plugin("CHECK", conf("firewalld", "10.93.0.5/24"), "d1")).code, 0);

    // Empty backend: firewalld runs, so it is used (no iptables chains appear).
    const r2 = await plugin("ADD", conf("", "10.93.0.6/24", { firewalldZone: "internal" }), "d2");
    assert.equal(r2.code, 0, r2.stdout + r2.stderr);
    assert.ok(await query("internal", "10.93.0.6/32"));
    assert.doesNotMatch(await firewallState(ns), /CNI-FORWARD|cni_nft_firewall/);

    assert.equal((await plugin("DEL", conf("firewalld", "10.93.0.5/24"), "d1")).code, 0);
    assert.equal((await plugin("DEL", conf("firewalld", "10.93.0.5/24"), "d1")).code, 0, "DEL twice");
    assert.equal(await query("trusted", "10.93.0.5/32"), false);
    const chk = await plugin("CHECK", conf("firewalld", "10.93.0.5/24"), "d1");
    assert.notEqual(chk.code, 0);
    assert.match(String(chk.json.msg), /10\.93\.0\.5\/32 in trusted zone/);
    assert.equal(
      (await plugin("DEL", conf("", "10.93.0.6/24", { firewalldZone: "internal" }), "d2")).code,
      0,
    );
    assert.equal(await query("internal", "10.93.0.6/32"), false);
  });

  test("DEL without prevResult and GC remove the sources the records name (upstream leaves them)", async () => {
    const noPrev = (c: object): object => ({ ...c, prevResult: undefined });
    for (const [id, ip] of [
      ["r1", "10.93.0.7/24"],
      ["r2", "10.93.0.8/24"],
      ["r3", "10.93.0.9/24"],
    ] as const) {
      const r = await plugin("ADD", conf("firewalld", ip, { firewalldZone: "internal" }), id);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    const del = await plugin(
      "DEL",
      noPrev(conf("firewalld", "10.93.0.7/24", { firewalldZone: "internal" })),
      "r1",
    );
    assert.equal(del.code, 0, del.stdout);
    assert.equal(await query("internal", "10.93.0.7/32"), false);
    assert.equal(await query("internal", "fd93::7/128"), false);
    const gc = {
      ...noPrev(conf("firewalld", "10.93.0.0/24", { firewalldZone: "internal" })),
      cniVersion: "1.1.0",
      "cni.dev/valid-attachments": [{ containerID: "r3", ifname: "eth0" }],
    };
    const r = await plugin("GC", gc, "");
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await query("internal", "10.93.0.8/32"), false, "GC removed the attachment not valid");
    assert.ok(await query("internal", "10.93.0.9/32"), "GC kept the valid one");
    assert.equal((await plugin("DEL", noPrev(conf("firewalld", "10.93.0.9/24")), "r3")).code, 0);
    assert.equal(await query("internal", "10.93.0.9/32"), false);
    assert.deepEqual(
      recordDirs(ns.path).filter((d) => existsSync(d) && readdirSync(d).length),
      [],
      "no record left",
    );
  });

  test("after a firewalld reload, the unit's D-Bus listener runs cni-nft restore and the sources come back", async () => {
    // An attachment as libcni caches it: a firewall plugin on firewalld, its addresses bound.
    const cache = join(dir.path, "cache");
    mkdirSync(join(cache, "results"), { recursive: true });
    const list = {
      cniVersion: "1.0.0",
      name: "fwdnet",
      plugins: [{ type: "firewall", backend: "firewalld" }],
    };
    const result = { cniVersion: "1.0.0", ips: [{ address: "10.93.0.9/24" }] };
    writeFileSync(
      join(cache, "results", "fwdnet-d9-eth0"),
      JSON.stringify({
        kind: "cniCacheV1",
        containerId: "d9",
        config: Buffer.from(JSON.stringify(list)).toString("base64"),
        ifName: "eth0",
        networkName: "fwdnet",
        netns: ns.path,
        result,
      }),
    );
    const add = await plugin(
      "ADD",
      { ...list.plugins[0], cniVersion: "1.0.0", name: "fwdnet", prevResult: result },
      "d9",
    );
    assert.equal(add.code, 0, add.stdout + add.stderr);
    assert.ok(await query("trusted", "10.93.0.9/32"));

    // The unit's command, with the CLI where this checkout has it.
    const unit = readFileSync(join(ROOT, "deploy", "systemd", "cni-nft-firewalld-reload.service"), "utf8");
    const cmd = /^ExecStart=\/bin\/sh -c '(.*)'$/m
      .exec(unit)![1]!
      .replaceAll("/opt/cni/bin/cni-nft", join(OUR_BIN, "cni-nft"));
    const listener = spawn("ip", ["netns", "exec", ns.name, "sh", "-c", cmd], {
      env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: busEnv, CNI_CACHE_DIR: cache },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let log = "";
    listener.stdout.on("data", (d: Buffer) => (log += d.toString()));
    listener.stderr.on("data", (d: Buffer) => (log += d.toString()));
    try {
      await new Promise((r) => setTimeout(r, 1500)); // dbus-monitor subscribes
      assert.equal((await dbus("org.fedoraproject.FirewallD1.reload")).code, 0);
      let back = false;
      for (let i = 0; i < 80 && !back; i++) {
        await new Promise((r) => setTimeout(r, 250));
        back = await query("trusted", "10.93.0.9/32");
      }
      assert.ok(back, `the source is bound again after the reload: ${log}`);
    } finally {
      process.kill(-listener.pid!, "SIGKILL");
    }
    assert.equal(
      (
        await plugin(
          "DEL",
          { ...list.plugins[0], cniVersion: "1.0.0", name: "fwdnet", prevResult: result },
          "d9",
        )
      ).code,
      0,
    );
  });

  test("when firewalld is not running the error says so; auto falls back to iptables", async () => {
    const noBus = await plugin(
      "ADD",
      conf("firewalld", "10.93.0.7/24"),
      "d3",
      `unix:path=${dir.path}/none.sock`,
    );
    assert.notEqual(noBus.code, 0);
    assert.match(String(noBus.json.msg), /firewalld is not running/);
    firewalld?.kill("SIGTERM");
    for (let i = 0; i < 40 && (await dbus("org.fedoraproject.FirewallD1.getDefaultZone")).code === 0; i++)
      await new Promise((r) => setTimeout(r, 250));
    const r = await plugin("ADD", conf("firewalld", "10.93.0.7/24"), "d3");
    assert.notEqual(r.code, 0);
    assert.match(String(r.json.msg), /firewalld is not running/);
    const auto = await plugin("ADD", conf("", "10.93.0.7/24"), "d3");
    assert.equal(auto.code, 0, auto.stdout + auto.stderr);
    assert.match(await firewallState(ns), /-A CNI-FORWARD -s 10\.93\.0\.7\/32 -j ACCEPT/);
  });
});
