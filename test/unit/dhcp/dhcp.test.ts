/**
 * DHCP without a network: message encoding/decoding, routes from options 121/33, the options a
 * lease sends, upstream's flag syntax, and a lease's life (renew, rebind, expire → interface
 * down; release) driven by a fake exchange runner.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  MessageType,
  Option,
  classlessRoutes,
  decode,
  encode,
  type DhcpMessage,
} from "../../../src/dhcp/message.js";
import type { ExchangeRequest, ExchangeResponse } from "../../../src/dhcp/exchange.js";
import { leaseOptions, clientId, dhcpSchema } from "../../../plugins/ipam/dhcp/config.js";
import { Lease, leaseResult } from "../../../plugins/ipam/dhcp/lease.js";
import { parseDaemonFlags, parseDuration } from "../../../plugins/ipam/dhcp/daemon.js";
import { validateConfig } from "../../../src/cni/index.js";

function ack(opts: [number, number[]][], yiaddr = "10.1.2.3"): DhcpMessage {
  return {
    op: 2,
    xid: 0x01020304,
    broadcast: true,
    ciaddr: "0.0.0.0",
    yiaddr,
    siaddr: "0.0.0.0",
    giaddr: "0.0.0.0",
    chaddr: "02:00:00:00:00:01",
    options: new Map([
      [Option.MessageType, Buffer.from([MessageType.Ack])],
      ...opts.map(([c, v]) => [c, Buffer.from(v)] as [number, Buffer]),
    ]),
  };
}

test("encode/decode round trip; long options split and joined (RFC 3396); 300-byte minimum", () => {
  const m = ack([
    [Option.SubnetMask, [255, 255, 255, 0]],
    [200, Array.from({ length: 600 }, (_, i) => i & 0xff)],
  ]);
  const wire = encode(m);
  assert.equal(wire.readUInt32BE(236), 0x63825363);
  const back = decode(wire);
  assert.deepEqual(back.options.get(200), m.options.get(200));
  assert.equal(back.yiaddr, "10.1.2.3");
  assert.equal(back.broadcast, true);
  assert.equal(back.chaddr, "02:00:00:00:00:01");
  assert.ok(encode(ack([])).length >= 300);
  assert.throws(() => decode(Buffer.alloc(100)), /too short/);
});

test("routes: option 121 replaces 33 and the router; a 0.0.0.0 router means on-link; priority", () => {
  assert.deepEqual(classlessRoutes(Buffer.from([24, 192, 168, 5, 10, 0, 0, 1, 0, 10, 0, 0, 1])), [
    { dst: "192.168.5.0/24", gw: "10.0.0.1" },
    { dst: "0.0.0.0/0", gw: "10.0.0.1" },
  ]);
  const with121 = ack([
    [Option.SubnetMask, [255, 255, 0, 0]],
    [Option.Router, [10, 1, 0, 1]],
    [Option.ClasslessStaticRoute, [16, 172, 16, 0, 0, 0, 0, 32, 8, 8, 8, 8, 10, 1, 0, 1]],
  ]);
  assert.deepEqual(leaseResult(with121, 0), {
    cniVersion: "1.1.0",
    ips: [{ address: "10.1.2.3/16", gateway: "10.1.0.1" }],
    routes: [
      { dst: "172.16.0.0/16", scope: 253 },
      { dst: "8.8.8.8/32", gw: "10.1.0.1" },
    ],
    dns: {},
  });
  const with33 = ack([
    [Option.SubnetMask, [255, 255, 255, 0]],
    [Option.Router, [10, 1, 2, 1]],
    [Option.StaticRoute, [172, 20, 0, 0, 10, 1, 2, 254]],
  ]);
  assert.deepEqual(leaseResult(with33, 100).routes, [
    { dst: "172.20.0.0/16", gw: "10.1.2.254", priority: 100 },
    { dst: "0.0.0.0/0", gw: "10.1.2.1", priority: 100 },
  ]);
  assert.throws(() => leaseResult(ack([]), 0), /Subnet Mask not found/);
});

test("options sent: provided values (config, then CNI_ARGS), request list with upstream's defaults", () => {
  const conf = validateConfig(dhcpSchema, {
    cniVersion: "1.0.0",
    name: "n",
    ipam: {
      type: "dhcp",
      provide: [
        { option: "host-name", value: "web", fromArg: "K8S_POD_NAME" },
        { option: "60", value: "cni" },
      ],
      request: [{ option: "6" }],
    },
  });
  assert.deepEqual(leaseOptions(conf, { K8S_POD_NAME: "pod-1" }), {
    12: Buffer.from("pod-1").toString("hex"),
    60: Buffer.from("cni").toString("hex"),
    55: "060301",
  });
  const skip = validateConfig(dhcpSchema, {
    cniVersion: "1.0.0",
    name: "n",
    ipam: { type: "dhcp", request: [{ skipDefault: true }] },
  });
  assert.deepEqual(leaseOptions(skip, {}), {});
  assert.equal(clientId("c".repeat(300), "n", "eth0").length, 254);
});

test("daemon flags as Go's flag package reads them", () => {
  const o = parseDaemonFlags([
    "-socketpath",
    "/x.sock",
    "--timeout=2s",
    "-resendmax",
    "1m2s",
    "-broadcast",
    "-resendtimeout",
    "500ms",
  ]);
  assert.deepEqual(
    [o.socketPath, o.timeoutMs, o.resendMaxMs, o.broadcast, o.resendTimeoutMs],
    ["/x.sock", 2000, 62_000, true, 500],
  );
  assert.equal(parseDuration("1h30m", "t"), 5_400_000);
  assert.throws(() => parseDuration("10", "timeout"), /invalid value "10" for flag -timeout/);
  assert.throws(() => parseDaemonFlags(["-pidfile", "rel"]), /path not absolute/);
});

test("a lease's life: renew fails, rebind fails, expiry brings the interface down; release after", async () => {
  const calls: string[] = [];
  let expired!: () => void;
  const down = new Promise<void>((r) => (expired = r));
  const run = (_netns: string, req: ExchangeRequest): Promise<ExchangeResponse> => {
    calls.push(req.kind);
    if (req.kind === "down") expired();
    if (req.kind !== "acquire") return Promise.resolve({ ok: false, error: "server gone" });
    // lease 5 s, T1 1 s, T2 3 s: two seconds of margin for each stage on a loaded machine
    const a = ack([
      [Option.SubnetMask, [255, 0, 0, 0]],
      [Option.LeaseTime, [0, 0, 0, 5]],
      [Option.RenewalTime, [0, 0, 0, 1]],
      [Option.RebindingTime, [0, 0, 0, 3]],
      [Option.ServerId, [10, 0, 0, 1]],
    ]);
    return Promise.resolve({
      ok: true,
      ack: encode(a).toString("hex"),
      startedAt: Date.now(),
      mac: "02:00:00:00:00:01",
    });
  };
  const lease = new Lease(
    {
      clientId: "c/n/eth0",
      network: "n",
      containerId: "c",
      ifname: "eth0",
      netns: "/run/netns/x",
      options: {},
      timeoutMs: 1,
      deadlineMs: 1,
      resendMaxMs: 1,
      broadcast: false,
      log: () => undefined,
    },
    run,
  );
  const keepAlive = setInterval(() => undefined, 1000); // the lease's timers do not hold the process
  await lease.acquire();
  assert.equal(lease.server, "10.0.0.1");
  await down;
  clearInterval(keepAlive);
  assert.equal(calls[0], "acquire");
  assert.ok(calls.includes("renew") && calls.includes("rebind"), calls.join(","));
  assert.ok(calls.indexOf("renew") < calls.indexOf("rebind"));
  assert.equal(calls.at(-1), "down");
  assert.equal(lease.expired, true);
  await lease.release();
  assert.equal(calls.at(-1), "release");
});
