/**
 * bandwidth on the real kernel: the same tc objects as upstream 1.1.1 for the same config (and
 * each side's CHECK and DEL accept the other's ADD), the rates proved with timed transfers both
 * ways, runtimeConfig.bandwidth, shaped/unshaped subnets proved with packets, validation that
 * changes nothing, DEL that leaves nothing, GC of stale ifbs.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { UPSTREAM_BIN, cni, cniOk } from "../helpers/cni.js";
import { timedTransfer } from "../helpers/throughput.js";

before(sweepStaleNamespaces);

describe("bandwidth", () => {
  const nets = new NetnsPool();
  let host: Netns;
  let n = 0;
  before(async () => {
    host = await nets.create("bwh");
  });
  after(() => nets.destroyAll());

  interface Pair {
    ctr: Netns;
    hostIf: string;
    ctrIp: string;
    hostIp: string;
    id: string;
    prev: object;
  }
  /** A container namespace with eth0, whose veth peer `bwvN` in the host carries 10.70.N.1/24. */
  async function pair(): Promise<Pair> {
    const i = ++n;
    const ctr = await nets.create(`bwc${i}`);
    const hostIf = `bwv${i}`;
    await host.sh(["ip", "link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ctr.path]);
    await host.sh(["ip", "addr", "add", `10.70.${i}.1/24`, "dev", hostIf]);
    await host.sh(["ip", "link", "set", hostIf, "up"]);
    await ctr.sh(["ip", "addr", "add", `10.70.${i}.2/24`, "dev", "eth0"]);
    await ctr.sh(["ip", "link", "set", "eth0", "up"]);
    const mac = (JSON.parse(await host.sh(["ip", "-j", "link", "show", hostIf])) as { address: string }[])[0]!
      .address;
    const prev = {
      cniVersion: "1.0.0",
      interfaces: [
        { name: hostIf, mac },
        { name: "eth0", sandbox: ctr.path },
      ],
      ips: [{ address: `10.70.${i}.2/24`, interface: 1 }],
    };
    return { ctr, hostIf, ctrIp: `10.70.${i}.2`, hostIp: `10.70.${i}.1`, id: `bwctr${i}`, prev };
  }
  const conf = (p: Pair, extra: object): object => ({
    cniVersion: "1.0.0",
    name: "bwnet",
    type: "bandwidth",
    prevResult: p.prev,
    ...extra,
  });
  const call = (p: Pair, bin?: string): { containerId: string; netns: string; bin?: string } => ({
    containerId: p.id,
    netns: p.ctr.path,
    ...(bin ? { bin } : {}),
  });

  /** The tc state of the host namespace, minus what differs by name or counter. */
  async function tcState(): Promise<unknown[]> {
    const q = JSON.parse(await host.sh(["tc", "-j", "-d", "-raw", "qdisc", "show"])) as Array<{
      kind: string;
      handle: string;
      dev: string;
      options?: Record<string, unknown>;
    }>;
    return q
      .filter((x) => x.kind !== "noqueue")
      .map((x) => ({
        kind: x.kind,
        handle: x.handle,
        dev: x.dev.startsWith("bwp") ? "ifb" : "veth",
        rate: x.options?.["rate"],
        limit: x.options?.["limit"],
        buffer: x.options?.["burst_raw"],
      }));
  }
  async function ifbs(): Promise<string[]> {
    const l = JSON.parse(await host.sh(["ip", "-j", "link", "show", "type", "ifb"])) as { ifname: string }[];
    return l.map((x) => x.ifname).sort();
  }
  const both = {
    ingressRate: 8_000_000,
    ingressBurst: 800_000,
    egressRate: 16_000_000,
    egressBurst: 1_600_000,
  };

  test("same tc objects as upstream; CHECK and DEL accept each other's ADD", async () => {
    const p = await pair();
    const c = conf(p, both);
    const up = await cniOk(host, "bandwidth", "ADD", c, call(p, UPSTREAM_BIN));
    const theirs = await tcState();
    await cniOk(host, "bandwidth", "CHECK", c, call(p)); // ours checks theirs
    await cniOk(host, "bandwidth", "DEL", c, call(p)); // ours deletes theirs, qdiscs included
    assert.deepEqual(await tcState(), []);
    assert.deepEqual(await ifbs(), []);

    const ours = await cniOk(host, "bandwidth", "ADD", c, call(p));
    assert.deepEqual(await tcState(), theirs);
    const names = (r: Record<string, unknown>): string[] =>
      (r["interfaces"] as { name: string }[]).map((i) => i.name);
    assert.deepEqual(names(ours), names(up));
    await cniOk(host, "bandwidth", "CHECK", c, call(p, UPSTREAM_BIN));
    await cniOk(host, "bandwidth", "CHECK", c, call(p));
    // A different limit fails CHECK.
    const other = conf(p, { ...both, ingressRate: 9_000_000 });
    const bad = await cni(host, "bandwidth", "CHECK", other, call(p));
    assert.notEqual(bad.code, 0);
    assert.match(String(bad.json?.["msg"]), /Rate doesn't match/);
    await cniOk(host, "bandwidth", "DEL", c, call(p));
    await cniOk(host, "bandwidth", "DEL", c, call(p)); // again: nothing left is success
    assert.deepEqual(await tcState(), []);
    assert.deepEqual(await ifbs(), []);
  });

  test("the rates hold for real transfers both ways (runtimeConfig.bandwidth)", async (t) => {
    const p = await pair();
    // 4 Mbit/s to the container, 8 Mbit/s from it: 1 MB and 2 MB take about 2 s each.
    const limits = {
      ingressRate: 4_000_000,
      ingressBurst: 64_000,
      egressRate: 8_000_000,
      egressBurst: 64_000,
    };
    const c = conf(p, { capabilities: { bandwidth: true }, runtimeConfig: { bandwidth: limits } });
    await cniOk(host, "bandwidth", "ADD", c, call(p));
    const [down, up] = await Promise.all([
      timedTransfer(host, p.ctr, p.ctrIp, 5001, 1_000_000),
      timedTransfer(p.ctr, host, p.hostIp, 5002, 2_000_000),
    ]);
    const within = (measured: number, want: number, what: string): void =>
      assert.ok(
        Math.abs(measured - want) <= want * 0.2,
        `${what}: ${(measured / 1e6).toFixed(2)} Mbit/s, configured ${want / 1e6} Mbit/s`,
      );
    t.diagnostic(`measured ${(down.rate / 1e6).toFixed(2)} and ${(up.rate / 1e6).toFixed(2)} Mbit/s`);
    within(down.rate, limits.ingressRate, "to the container");
    within(up.rate, limits.egressRate, "from the container");
    await cniOk(host, "bandwidth", "DEL", c, call(p));
    assert.deepEqual(await tcState(), []);
    assert.deepEqual(await ifbs(), []);
  });

  test("unshapedSubnets: traffic to them is not shaped, the rest is", async () => {
    const p = await pair();
    await host.sh(["ip", "addr", "add", "10.71.0.1/24", "dev", p.hostIf]);
    await p.ctr.sh(["ip", "route", "add", "10.71.0.0/24", "dev", "eth0"]);
    const c = conf(p, { egressRate: 4_000_000, egressBurst: 64_000, unshapedSubnets: ["10.71.0.0/24"] });
    await cniOk(host, "bandwidth", "ADD", c, call(p));
    await cniOk(host, "bandwidth", "CHECK", c, call(p));
    const [shaped, free] = await Promise.all([
      timedTransfer(p.ctr, host, p.hostIp, 5003, 1_000_000),
      timedTransfer(p.ctr, host, "10.71.0.1", 5004, 1_000_000),
    ]);
    assert.ok(Math.abs(shaped.rate - 4e6) <= 0.8e6, `shaped: ${shaped.rate / 1e6} Mbit/s`);
    assert.ok(free.rate > 3 * 4e6, `unshaped: ${free.rate / 1e6} Mbit/s`);
    await cniOk(host, "bandwidth", "DEL", c, call(p));
    assert.deepEqual(await tcState(), []);
  });

  test("bad configs are refused with code 7 naming the field, and change nothing", async () => {
    const p = await pair();
    const before = [await tcState(), await ifbs()];
    const cases: Array<[object, RegExp]> = [
      [{ ingressRate: 1000 }, /ingressBurst: if rate is set, burst must also be set/],
      [{ egressBurst: 1000 }, /egressRate: if burst is set, rate must also be set/],
      [{ ingressRate: -1, ingressBurst: 10 }, /ingressRate/],
      [{ ingressRate: 1000, ingressBurst: 8 * 2 ** 32 }, /burst cannot be more than 4GB/],
      [{ egressRate: 1000, egressBurst: 1000, shapedSubnets: ["10.0.0.0/33"] }, /shapedSubnets\[0\]/],
      [
        {
          egressRate: 1000,
          egressBurst: 1000,
          shapedSubnets: ["10.0.0.0/8"],
          unshapedSubnets: ["10.1.0.0/16"],
        },
        /cannot be both specified/,
      ],
      [{ runtimeConfig: { bandwidth: { egressRate: "fast" } } }, /runtimeConfig.bandwidth.egressRate/],
      [
        { runtimeConfig: { bandwidth: { egressRate: 100, egressBurst: 0 } } },
        /runtimeConfig.bandwidth.egressBurst/,
      ],
    ];
    for (const [extra, msg] of cases) {
      const r = await cni(host, "bandwidth", "ADD", conf(p, extra), call(p));
      assert.equal(r.json?.["code"], 7, JSON.stringify(extra) + r.stdout);
      assert.match(String(r.json?.["msg"]), msg);
    }
    const noPrev = await cni(
      host,
      "bandwidth",
      "ADD",
      { cniVersion: "1.0.0", name: "bwnet", type: "bandwidth" },
      call(p),
    );
    assert.equal(noPrev.json?.["code"], 7);
    assert.match(String(noPrev.json?.["msg"]), /Required prevResult missing/);
    const old = await cni(host, "bandwidth", "ADD", { ...conf(p, both), cniVersion: "0.2.0" }, call(p));
    assert.equal(old.json?.["code"], 1);
    assert.deepEqual([await tcState(), await ifbs()], before);
    // No limits: the previous result unchanged, no process touches tc.
    const none = await cniOk(host, "bandwidth", "ADD", conf(p, {}), call(p));
    assert.deepEqual((none["interfaces"] as unknown[]).length, 2);
  });

  test("GC deletes this network's ifbs whose container is gone, and only those", async () => {
    const a = await pair();
    const b = await pair();
    const o = await pair();
    const lim = { egressRate: 8_000_000, egressBurst: 80_000 };
    await cniOk(host, "bandwidth", "ADD", conf(a, lim), call(a));
    await cniOk(host, "bandwidth", "ADD", conf(b, lim), call(b));
    await cniOk(host, "bandwidth", "ADD", { ...conf(o, lim), name: "othernet" }, call(o));
    const gc = {
      cniVersion: "1.1.0",
      name: "bwnet",
      type: "bandwidth",
      "cni.dev/valid-attachments": [{ containerID: a.id, ifname: "eth0" }],
    };
    assert.equal((await ifbs()).length, 3);
    await cniOk(host, "bandwidth", "GC", gc, { containerId: "" });
    assert.equal((await ifbs()).length, 2); // a's, and o's on the other network
    await cniOk(
      host,
      "bandwidth",
      "STATUS",
      { cniVersion: "1.1.0", name: "bwnet", type: "bandwidth" },
      { containerId: "" },
    );
    await cniOk(host, "bandwidth", "DEL", conf(a, lim), call(a));
    await cniOk(host, "bandwidth", "DEL", { ...conf(o, lim), name: "othernet" }, call(o));
    assert.deepEqual(await ifbs(), []);
  });
});
