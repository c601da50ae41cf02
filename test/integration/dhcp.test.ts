/**
 * dhcp IPAM on the real kernel: Debian's dnsmasq serves DHCP on a bridge in a "server" namespace,
 * containers are namespaces with an eth0 on that bridge, and `dhcp daemon` runs in a "host"
 * namespace, as a runtime would run it. Upstream 1.1.1's dhcp (plugin and daemon) runs beside
 * ours against the same server as the oracle: same result, same client identifier.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cni, ensureBuilt, OUR_BIN, tempDir, UPSTREAM_BIN } from "../helpers/cni.js";
import { NetnsPool, type Netns } from "../helpers/netns.js";
import { startBackground, waitFor, type Background } from "../helpers/background.js";
import { haveDnsmasq as haveDhcpServer, startDhcpServer } from "../helpers/dnsmasq.js";

const haveDnsmasq = haveDhcpServer();
const nets = new NetnsPool();
const tmp = tempDir("dhcp");
const ours = join(tmp.path, "ours.sock");
const theirs = join(tmp.path, "upstream.sock");
const leases = join(tmp.path, "dnsmasq.leases");
let host: Netns;
let server: Netns;
const procs: Background[] = [];
let dnsmasq: Background;
let daemon: Background;
let n = 0;

const conf = (socket: string, extra: object = {}) => ({
  cniVersion: "1.0.0",
  name: "dnet",
  type: "macvlan",
  ipam: { type: "dhcp", daemonSocketPath: socket, ...extra },
});

/** A container namespace whose eth0 sits on the server's bridge; returns it and eth0's MAC. */
async function container(): Promise<{ ns: Netns; mac: string }> {
  const ns = await nets.create(`dc${++n}`);
  const peer = `dv${process.pid % 10000}${n}`;
  await ns.sh(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", server.name]);
  await server.sh(["ip", "link", "set", peer, "master", "br0", "up"]);
  const [l] = JSON.parse(await ns.sh(["ip", "-j", "link", "show", "eth0"])) as { address: string }[];
  return { ns, mac: l!.address };
}

function leaseFor(mac: string): string | undefined {
  if (!existsSync(leases)) return undefined;
  return readFileSync(leases, "utf8")
    .split("\n")
    .find((l) => l.split(" ")[1] === mac);
}

function startOurDaemon(log: string): Background {
  return startBackground(
    host.argv([join(OUR_BIN, "dhcp"), "daemon", "-socketpath", ours, "-resendtimeout", "30s"]),
    join(tmp.path, log),
  );
}

const hex = (s: string) => [...Buffer.from(s)].map((b) => b.toString(16).padStart(2, "0")).join(":");

before(async () => {
  if (!haveDnsmasq) return;
  await ensureBuilt();
  host = await nets.create("dhost");
  server = await nets.create("dsrv");
  dnsmasq = await startDhcpServer(server, "192.168.211", tmp.path, [
    "--dhcp-option=option:T1,4",
    "--dhcp-option=option:T2,60",
  ]);
  daemon = startOurDaemon("daemon.log");
  procs.push(
    dnsmasq,
    daemon,
    startBackground(
      host.argv([join(UPSTREAM_BIN, "dhcp"), "daemon", "-socketpath", theirs]),
      join(tmp.path, "upstream.log"),
    ),
  );
  await waitFor("both daemons' sockets", () => (existsSync(ours) && existsSync(theirs) ? true : undefined));
});
after(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await nets.destroyAll();
  tmp.remove();
});

test(
  "ADD: the same result as upstream 1.1.1, the same client identifier at the server",
  { skip: !haveDnsmasq && "no dnsmasq (scripts/setup.sh installs dnsmasq-base)" },
  async () => {
    const a = await container();
    const b = await container();
    const call = (c: { ns: Netns }, id: string) => ({ containerId: id, netns: c.ns.path });
    const mine = await cni(host, "dhcp", "ADD", conf(ours), call(a, "ctr-ours"));
    assert.equal(mine.code, 0, mine.stdout + mine.stderr + daemon.output());
    const up = await cni(host, "dhcp", "ADD", conf(theirs), { ...call(b, "ctr-up"), bin: UPSTREAM_BIN });
    assert.equal(up.code, 0, up.stdout + up.stderr);
    const addr = (r: Record<string, unknown>) => (r["ips"] as { address: string }[])[0]!.address;
    assert.match(addr(mine.json!), /^192\.168\.211\.\d+\/24$/);
    assert.deepEqual(
      JSON.parse(JSON.stringify(mine.json).replace(addr(mine.json!), "ADDR")),
      JSON.parse(JSON.stringify(up.json).replace(addr(up.json!), "ADDR")),
    );
    assert.deepEqual(mine.json, {
      cniVersion: "1.0.0",
      ips: [{ address: addr(mine.json!), gateway: "192.168.211.1" }],
      routes: [{ dst: "0.0.0.0/0", gw: "192.168.211.1" }],
      dns: {},
    });
    // dnsmasq's lease file: "<expiry> <mac> <ip> <hostname> <client-id>"
    assert.equal(leaseFor(a.mac)!.split(" ")[4], `00:${hex("ctr-ours/dnet/eth0")}`);
    assert.equal(leaseFor(b.mac)!.split(" ")[4], `00:${hex("ctr-up/dnet/eth0")}`);
    assert.equal(leaseFor(a.mac)!.split(" ")[2], addr(mine.json).split("/")[0]);

    // Nothing left in the container but what the main plugin would configure: no broadcast route.
    assert.equal((await a.ns.sh(["ip", "route", "show", "table", "all", "proto", "dhcp"])).trim(), "");
    // A second ADD of the same attachment returns the lease it holds.
    const again = await cni(host, "dhcp", "ADD", conf(ours), call(a, "ctr-ours"));
    assert.deepEqual(again.json, mine.json);

    for (const [c, id, sock, bin] of [
      [a, "ctr-ours", ours, OUR_BIN],
      [b, "ctr-up", theirs, UPSTREAM_BIN],
    ] as const) {
      const del = await cni(host, "dhcp", "DEL", conf(sock), { ...call(c, id), bin });
      assert.equal(del.code, 0, del.stdout);
    }
    await waitFor("both releases at the server", () =>
      !leaseFor(a.mac) && !leaseFor(b.mac) ? true : undefined,
    );
  },
);

test(
  "the lease is renewed at T1 (unicast to the server) once the address is configured; DEL releases it",
  { skip: !haveDnsmasq },
  async () => {
    const c = await container();
    const call = { containerId: "ctr-renew", netns: c.ns.path };
    const add = await cni(host, "dhcp", "ADD", conf(ours), call);
    assert.equal(add.code, 0, add.stdout + daemon.output());
    const address = (add.json!["ips"] as { address: string }[])[0]!.address;
    await c.ns.sh(["ip", "addr", "add", address, "dev", "eth0"]); // what the main plugin does with the result
    const acks = () =>
      dnsmasq
        .output()
        .split("\n")
        .filter((l) => l.includes("DHCPACK") && l.includes(c.mac)).length;
    await waitFor("a renewal ACK (T1 is 4 s)", () => (acks() >= 2 ? true : undefined), 60_000);
    await waitFor("the daemon's renewal", () =>
      /ctr-renew\/dnet\/eth0: lease renewed/.test(daemon.output()) ? true : undefined,
    );
    assert.equal((await cni(host, "dhcp", "CHECK", conf(ours), call)).code, 0);

    const del = await cni(host, "dhcp", "DEL", conf(ours), call);
    assert.equal(del.code, 0, del.stdout);
    await waitFor("the release at the server", () => (!leaseFor(c.mac) ? true : undefined));
    assert.match(
      dnsmasq.output(),
      new RegExp(`DHCPRELEASE\\(br0\\) ${address.split("/")[0]!.replace(/\./g, "\\.")} ${c.mac}`),
    );
    assert.equal(
      (await cni(host, "dhcp", "DEL", conf(ours), call)).code,
      0,
      "DEL of a released lease succeeds",
    );
    const check = await cni(host, "dhcp", "CHECK", conf(ours), call);
    assert.equal(check.code, 1);
    assert.match(String(check.json?.["msg"]), /no active DHCP lease for ctr-renew\/dnet\/eth0/);
  },
);

test("GC releases the network's leases of attachments no longer valid", { skip: !haveDnsmasq }, async () => {
  const keep = await container();
  const drop = await container();
  for (const [c, id] of [
    [keep, "ctr-keep"],
    [drop, "ctr-drop"],
  ] as const)
    assert.equal((await cni(host, "dhcp", "ADD", conf(ours), { containerId: id, netns: c.ns.path })).code, 0);
  const gcConf = {
    ...conf(ours),
    cniVersion: "1.1.0",
    "cni.dev/valid-attachments": [{ containerID: "ctr-keep", ifname: "eth0" }],
  };
  const gc = await cni(host, "dhcp", "GC", gcConf, { containerId: "" });
  assert.equal(gc.code, 0, gc.stdout);
  await waitFor("the dropped lease released", () => (!leaseFor(drop.mac) ? true : undefined));
  assert.ok(leaseFor(keep.mac), "the valid attachment keeps its lease");
  assert.equal(
    (await cni(host, "dhcp", "DEL", conf(ours), { containerId: "ctr-keep", netns: keep.ns.path })).code,
    0,
  );
});

test(
  "STATUS, errors: no daemon (50), upstream's daemon (50), bad config (7) before the daemon is asked",
  { skip: !haveDnsmasq },
  async () => {
    const v11 = { ...conf(ours), cniVersion: "1.1.0" };
    assert.equal((await cni(host, "dhcp", "STATUS", v11, { containerId: "" })).code, 0);
    const none = await cni(
      host,
      "dhcp",
      "STATUS",
      { ...v11, ipam: { ...v11.ipam, daemonSocketPath: join(tmp.path, "none.sock") } },
      { containerId: "" },
    );
    assert.equal(none.json?.["code"], 50);
    assert.match(
      String(none.json?.["msg"]),
      /error dialing DHCP daemon .*none\.sock.*is "dhcp daemon" running/,
    );

    const c = await container();
    const mixed = await cni(host, "dhcp", "ADD", conf(theirs), { containerId: "ctr-mix", netns: c.ns.path });
    assert.equal(mixed.json?.["code"], 50);
    assert.match(String(mixed.json?.["msg"]), /not cni-nft's dhcp daemon/);

    const bad: [object, RegExp][] = [
      [{ daemonSocketPath: "relative.sock" }, /ipam.daemonSocketPath: must be an absolute path/],
      [
        { provide: [{ option: "no-such-option", value: "x" }] },
        /ipam.provide\[0\].option: must be a DHCP option name/,
      ],
      [{ request: [{ option: "300" }] }, /ipam.request\[0\].option/],
      [{ priority: -1 }, /ipam.priority/],
    ];
    for (const [ipam, msg] of bad) {
      const r = await cni(host, "dhcp", "ADD", conf(join(tmp.path, "none.sock"), ipam), {
        containerId: "x",
        netns: c.ns.path,
      });
      assert.equal(r.json?.["code"], 7, JSON.stringify(ipam));
      assert.match(String(r.json?.["msg"]), msg);
    }
  },
);

test(
  "the daemon refuses a second daemon on its socket and unknown flags, as upstream's flag parser",
  { skip: !haveDnsmasq },
  async () => {
    const second = await host.run([join(OUR_BIN, "dhcp"), "daemon", "-socketpath", ours]);
    assert.notEqual(second.code, 0);
    assert.match(second.stderr, /already listening/);
    const flag = await host.run([join(OUR_BIN, "dhcp"), "daemon", "-nosuch", "1"]);
    assert.notEqual(flag.code, 0);
    assert.match(flag.stderr, /flag provided but not defined: -nosuch/);
  },
);

for (const [k, [label, bin]] of (
  [
    ["ours", OUR_BIN],
    ["upstream 1.1.1's", UPSTREAM_BIN],
  ] as const
).entries())
  test(
    `macvlan (${label}) + our dhcp: the lease on the pod's interface, the server reached, DEL releases`,
    { skip: !haveDnsmasq },
    async () => {
      const master = `mst${k}`;
      const peer = `dm${process.pid % 10000}${k}`;
      await host.sh([
        "ip",
        "link",
        "add",
        master,
        "type",
        "veth",
        "peer",
        "name",
        peer,
        "netns",
        server.name,
      ]);
      await server.sh(["ip", "link", "set", peer, "master", "br0", "up"]);
      await host.sh(["ip", "link", "set", master, "up"]);
      const c = await nets.create(`dmv${k}`);
      const mv = { ...conf(ours), master, mode: "bridge" };
      // Upstream's macvlan finds our dhcp first in CNI_PATH.
      const call = {
        containerId: `ctr-macvlan-${k}`,
        netns: c.path,
        bin,
        path: `${OUR_BIN}:${UPSTREAM_BIN}`,
      };
      const add = await cni(host, "macvlan", "ADD", mv, call);
      assert.equal(add.code, 0, add.stdout + add.stderr + daemon.output());
      const address = (add.json!["ips"] as { address: string }[])[0]!.address;
      assert.match(address, /^192\.168\.211\.\d+\/24$/);
      assert.ok((await c.sh(["ip", "-4", "-br", "addr", "show", "eth0"])).includes(address));
      assert.match(await c.sh(["ip", "route", "show", "default"]), /default via 192\.168\.211\.1 dev eth0/);
      assert.equal(
        (await c.run(["ping", "-c", "1", "-W", "5", "192.168.211.1"])).code,
        0,
        "the server answers the pod",
      );
      const [l] = JSON.parse(await c.sh(["ip", "-j", "link", "show", "eth0"])) as { address: string }[];
      assert.ok(leaseFor(l!.address));
      assert.equal((await cni(host, "macvlan", "DEL", mv, call)).code, 0);
      await waitFor("the release at the server", () => (!leaseFor(l!.address) ? true : undefined));
    },
  );

test(
  "a restarted daemon takes its leases over: CHECK passes, renewal goes on, DEL releases",
  { skip: !haveDnsmasq },
  async () => {
    const c = await container();
    const call = { containerId: "ctr-restart", netns: c.ns.path };
    const add = await cni(host, "dhcp", "ADD", conf(ours), call);
    assert.equal(add.code, 0, add.stdout);
    await c.ns.sh([
      "ip",
      "addr",
      "add",
      (add.json!["ips"] as { address: string }[])[0]!.address,
      "dev",
      "eth0",
    ]);
    await daemon.stop();
    assert.ok(!existsSync(ours), "SIGTERM removes the socket");
    assert.match(readFileSync(`${ours}.leases.json`, "utf8"), /ctr-restart\/dnet\/eth0/);
    const acks = () =>
      dnsmasq
        .output()
        .split("\n")
        .filter((l) => l.includes("DHCPACK") && l.includes(c.mac)).length;
    const before = acks();
    daemon = startOurDaemon("daemon2.log");
    procs.push(daemon);
    await waitFor("the new daemon's socket", () => (existsSync(ours) ? true : undefined));
    await waitFor("the lease restored", () =>
      /ctr-restart\/dnet\/eth0: lease restored/.test(daemon.output()) ? true : undefined,
    );
    assert.equal(
      (await cni(host, "dhcp", "CHECK", conf(ours), call)).code,
      0,
      "the new daemon knows the lease",
    );
    await waitFor("a renewal by the new daemon", () => (acks() > before ? true : undefined));
    const again = await cni(host, "dhcp", "ADD", conf(ours), call);
    assert.deepEqual(again.json, add.json, "the same lease, not a new one");
    assert.equal((await cni(host, "dhcp", "DEL", conf(ours), call)).code, 0);
    await waitFor("the release at the server", () => (!leaseFor(c.mac) ? true : undefined));
    assert.doesNotMatch(readFileSync(`${ours}.leases.json`, "utf8"), /ctr-restart/);
  },
);
