/**
 * tuning against upstream 1.1.1's: the same config on the same kind of interface gives the same
 * interface state, sysctls and result; each restores on DEL what the other saved; path traversal
 * and non-net sysctls are refused and change nothing; CHECK; podman's recorded calls replayed.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { OUR_BIN, UPSTREAM_BIN, cni, cniOk, loadFixtures, tempDir } from "../helpers/cni.js";

before(sweepStaleNamespaces);

interface LinkState {
  address: string;
  mtu: number;
  txqlen: number;
  flags: string[];
}

describe("tuning", () => {
  const nets = new NetnsPool();
  const dir = tempDir("tuning");
  let host: Netns;
  const ctrs: Netns[] = [];
  before(async () => {
    host = await nets.create("tuh");
    for (let i = 0; i < 2; i++) ctrs.push(await nets.create(`tuc${i}`));
  });
  after(async () => {
    await nets.destroyAll();
    dir.remove();
  });

  /** A fresh eth0 (a veth whose peer stays in the namespace) with known settings in container n. */
  async function freshLink(n: number): Promise<Netns> {
    const c = ctrs[n]!;
    await c.run(["ip", "link", "del", "eth0"]);
    await c.sh([
      "ip",
      "link",
      "add",
      "eth0",
      "address",
      "02:00:00:00:00:0" + n,
      "mtu",
      "1500",
      "type",
      "veth",
      "peer",
      "name",
      "peer0",
    ]);
    await c.sh(["ip", "link", "set", "eth0", "up"]);
    return c;
  }
  async function state(c: Netns): Promise<LinkState & { sysctls: string[] }> {
    const l = (JSON.parse(await c.sh(["ip", "-j", "link", "show", "dev", "eth0"])) as LinkState[])[0]!;
    const sysctls = await Promise.all(
      ["net/ipv4/conf/eth0/rp_filter", "net/ipv4/ping_group_range", "net/ipv6/conf/eth0/accept_ra"].map(
        async (f) => (await c.sh(["cat", `/proc/sys/${f}`])).trim(),
      ),
    );
    return { address: l.address, mtu: l.mtu, txqlen: l.txqlen, flags: [...l.flags].sort(), sysctls };
  }
  const prev = (c: Netns): object => ({
    cniVersion: "1.0.0",
    interfaces: [{ name: "br0" }, { name: "eth0", mac: "02:00:00:00:00:00", sandbox: c.path }],
    ips: [{ address: "10.95.0.2/24", interface: 1 }],
  });
  const conf = (c: Netns, extra: object): object => ({
    cniVersion: "1.0.0",
    name: "tunet",
    type: "tuning",
    dataDir: join(dir.path, "data"),
    prevResult: prev(c),
    ...extra,
  });
  const full = {
    mac: "c2:11:22:33:44:55",
    mtu: 1400,
    promisc: true,
    allmulti: true,
    txQLen: 2000,
    sysctl: {
      "net.ipv4.conf.IFNAME.rp_filter": "2",
      "net.ipv4.ping_group_range": "0 1000",
      "net/ipv6/conf/eth0/accept_ra": "0",
    },
  };

  test("same input, same effect as upstream; each restores what the other saved", async () => {
    for (const [adder, deleter] of [
      ["upstream", "ours"],
      ["ours", "upstream"],
    ] as const) {
      const bin = (who: string): string => (who === "upstream" ? UPSTREAM_BIN : OUR_BIN);
      // upstream 1.1.1 has no txQLen: compare without it, then check ours sets it.
      const cfg = { ...full, txQLen: undefined };
      const a = await freshLink(0);
      const b = await freshLink(1);
      const original = await state(a);
      const ra = await cniOk(host, "tuning", "ADD", conf(a, cfg), {
        containerId: `t-${adder}`,
        netns: a.path,
        bin: bin(adder),
      });
      const rb = await cniOk(host, "tuning", "ADD", conf(b, cfg), {
        containerId: `u-${deleter}`,
        netns: b.path,
        bin: bin(deleter),
      });
      const noSandbox = (r: Record<string, unknown>): string =>
        JSON.stringify(r).replace(/"sandbox":"[^"]*"/, "");
      assert.equal(noSandbox(ra), noSandbox(rb), "same result");
      assert.equal((ra["interfaces"] as Array<{ mac?: string }>)[1]!.mac, full.mac);
      const sa = await state(a);
      const sb = await state(b);
      assert.deepEqual(sa, sb, "same interface state and sysctls");
      assert.equal(sa.address, full.mac);
      assert.equal(sa.mtu, 1400);
      assert.ok(sa.flags.includes("PROMISC") && sa.flags.includes("ALLMULTI"));
      assert.deepEqual(sa.sysctls, ["2", "0\t1000", "0"]);
      // Same backup file, byte for byte.
      const files = readdirSync(join(dir.path, "data")).sort();
      const fa = readFileSync(join(dir.path, "data", `t-${adder}_eth0.json`), "utf8");
      const fb = readFileSync(join(dir.path, "data", `u-${deleter}_eth0.json`), "utf8");
      assert.equal(
        fa.replace(/02:00:00:00:00:0\d/, "M"),
        fb.replace(/02:00:00:00:00:0\d/, "M"),
        files.join(),
      );
      // CHECK across. Upstream 1.1.1's CHECK compares multi-value sysctls as text (fails on its
      // own ping_group_range) and does not substitute IFNAME, so it checks the third sysctl only.
      // DEL by the other implementation restores.
      const single = { "net/ipv6/conf/eth0/accept_ra": "0" };
      const checkCfg = deleter === "upstream" ? { ...cfg, sysctl: single } : cfg;
      await cniOk(host, "tuning", "CHECK", conf(a, checkCfg), {
        containerId: `t-${adder}`,
        netns: a.path,
        bin: bin(deleter),
      });
      await cniOk(host, "tuning", "DEL", conf(a, cfg), {
        containerId: `t-${adder}`,
        netns: a.path,
        bin: bin(deleter),
      });
      const restored = await state(a);
      assert.deepEqual({ ...restored, sysctls: [] }, { ...original, sysctls: [] }, "link restored");
      assert.equal(existsSync(join(dir.path, "data", `t-${adder}_eth0.json`)), false);
      await cniOk(host, "tuning", "DEL", conf(b, cfg), {
        containerId: `u-${deleter}`,
        netns: b.path,
        bin: bin(adder),
      });
    }
  });

  test("txQLen, runtimeConfig mac, CNI_ARGS MAC and args.cni precedence; CHECK finds drift", async () => {
    const a = await freshLink(0);
    const r = await cniOk(
      host,
      "tuning",
      "ADD",
      conf(a, {
        mac: "c2:00:00:00:00:01",
        txQLen: 777,
        runtimeConfig: { mac: "c2:00:00:00:00:02" },
        args: { cni: { mtu: 1300, sysctl: { "net.ipv4.conf.eth0.rp_filter": "1" } } },
      }),
      { containerId: "p1", netns: a.path, args: "IgnoreUnknown=1;MAC=c2:00:00:00:00:03" },
    );
    const s = await state(a);
    assert.equal(s.address, "c2:00:00:00:00:02", "runtimeConfig wins over CNI_ARGS and mac");
    assert.equal((r["interfaces"] as Array<{ mac?: string }>)[1]!.mac, "c2:00:00:00:00:02");
    assert.equal(s.txqlen, 777);
    assert.equal(s.mtu, 1300);
    assert.equal(s.sysctls[0], "1");
    const c = conf(a, { txQLen: 777, args: { cni: { mtu: 1300 } } });
    await cniOk(host, "tuning", "CHECK", c, { containerId: "p1", netns: a.path });
    await a.sh(["ip", "link", "set", "eth0", "txqueuelen", "5"]);
    const bad = await cni(host, "tuning", "CHECK", c, { containerId: "p1", netns: a.path });
    assert.notEqual(bad.code, 0);
    assert.match(String(bad.json?.["msg"]), /Transmit Queue Length of eth0 is 777, current value is 5/);
    await cniOk(host, "tuning", "DEL", c, { containerId: "p1", netns: a.path });
    const back = await state(a);
    assert.equal(back.txqlen, 1000);
    assert.equal(back.address, "02:00:00:00:00:00");
    assert.equal(back.mtu, 1500);
  });

  test("sysctls outside the container's net tree, traversal, duplicates and bad MACs are refused, nothing changes", async () => {
    const a = await freshLink(0);
    const before = await state(a);
    const hostBefore = (await host.sh(["cat", "/proc/sys/kernel/hostname"])).trim();
    for (const [sysctl, why] of [
      [{ "kernel.hostname": "pwned" }, /invalid net sysctl key/],
      // Dots become slashes (as upstream), so `..` cannot climb out of net/: a path that does not exist.
      [{ "net/../kernel/hostname": "pwned" }, /net\/kernel\/hostname: Directory nonexistent/],
      [{ "net.ipv4.conf.IFNAME.rp_filter": "1", "../../kernel/hostname": "x" }, /invalid net sysctl key/],
      [{ "net.ipv4.nonexistent_sysctl": "1" }, /sysctl/],
    ] as const) {
      const r = await cni(host, "tuning", "ADD", conf(a, { sysctl, mtu: 1280 }), {
        containerId: "x",
        netns: a.path,
      });
      assert.notEqual(r.code, 0, JSON.stringify(sysctl));
      assert.match(String(r.json?.["msg"]), why);
    }
    const raw = `{"cniVersion":"1.0.0","name":"d","type":"tuning","sysctl":{"net.ipv4.ip_forward":"1","net.ipv4.ip_forward":"0"},"prevResult":${JSON.stringify(prev(a))}}`;
    const dup = await host.run([join(OUR_BIN, "tuning")], {
      input: raw,
      env: {
        PATH: process.env["PATH"],
        CNI_COMMAND: "ADD",
        CNI_CONTAINERID: "x",
        CNI_NETNS: a.path,
        CNI_IFNAME: "eth0",
        CNI_PATH: OUR_BIN,
      },
    });
    assert.notEqual(dup.code, 0);
    assert.match(dup.stdout, /duplicated sysctl keys/);
    const mac = await cni(host, "tuning", "ADD", conf(a, { mac: "zz:00" }), {
      containerId: "x",
      netns: a.path,
    });
    assert.match(String(mac.json?.["msg"]), /invalid args zz:00 for MAC addr/);
    const noPrev = await cni(
      host,
      "tuning",
      "ADD",
      { cniVersion: "1.0.0", name: "n", type: "tuning" },
      { containerId: "x", netns: a.path },
    );
    assert.match(String(noPrev.json?.["msg"]), /Required prevResult missing/);
    assert.deepEqual(await state(a), before);
    assert.equal((await host.sh(["cat", "/proc/sys/kernel/hostname"])).trim(), hostBefore);
  });

  test("DEL with the namespace gone succeeds and drops the backup; podman fixtures replay", async () => {
    const a = await freshLink(0);
    await cniOk(host, "tuning", "ADD", conf(a, { mtu: 1450 }), { containerId: "gone", netns: a.path });
    assert.ok(existsSync(join(dir.path, "data", "gone_eth0.json")));
    await cniOk(host, "tuning", "DEL", conf(a, { mtu: 1450 }), {
      containerId: "gone",
      netns: "/var/run/netns/cnt-nonexistent",
    });
    assert.equal(existsSync(join(dir.path, "data", "gone_eth0.json")), false);

    const fixtures = loadFixtures("tuning");
    assert.ok(fixtures.length >= 2);
    const b = await freshLink(1);
    for (const { name, fx } of fixtures) {
      const r = await host.run([join(OUR_BIN, "tuning")], {
        input: fx.stdin_raw,
        env: { PATH: process.env["PATH"], ...fx.cni_env, CNI_NETNS: b.path, CNI_PATH: OUR_BIN },
      });
      assert.equal(r.code, fx.exit_code, `${name}: ${r.stdout} ${r.stderr}`);
      if (fx.stdout) assert.deepEqual(JSON.parse(r.stdout), fx.stdout, name);
    }
  });
});
