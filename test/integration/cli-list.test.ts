/**
 * `cni-nft list` and `cni-nft inspect` against real attachments: a throwaway host namespace, two
 * networks (bridge + portmap + firewall, one on nftables with the spoof check, one on
 * iptables), containers added through `cni-nft add` as a runtime would, one of them removed
 * behind cni-nft's back (its namespace deleted). Progress of `list --check` appears on a
 * pseudo-terminal (script(1)) and never in a pipe.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OUR_BIN, ensureBuilt, tempDir } from "../helpers/cni.js";
import { chainConfs, type Backend } from "../helpers/chain.js";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";

const CLI = join(OUR_BIN, "cni-nft");
const ESC = "\u001b";
const nets = new NetnsPool();
const tmp = tempDir("cli-list");
const dirs = { conf: join(tmp.path, "net.d"), cache: join(tmp.path, "cache"), data: join(tmp.path, "data") };
const NETS: { name: string; backend: Backend; subnet: string }[] = [
  { name: `lnft${process.pid % 10000}`, backend: "nftables", subnet: "10.71.0.0/24" },
  { name: `lipt${process.pid % 10000}`, backend: "iptables", subnet: "10.72.0.0/24" },
];
let host: Netns;
const containers: Netns[] = [];

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    NETCONFPATH: dirs.conf,
    CNI_PATH: OUR_BIN,
    CNI_CACHE_DIR: dirs.cache,
    ...extra,
  };
}

async function cli(args: string[], extra: Record<string, string> = {}) {
  return host.run([CLI, ...args], { env: env(extra), timeoutMs: 120_000 });
}

async function add(net: number, c: Netns, id: string, hostPort: number): Promise<void> {
  const r = await cli(["add", NETS[net]!.name, c.path], {
    CNI_CONTAINERID: id,
    CAP_ARGS: JSON.stringify({ portMappings: [{ hostPort, containerPort: 80, protocol: "tcp" }] }),
  });
  assert.equal(r.code, 0, r.stderr + r.stdout);
}

interface Row {
  network: string;
  containerId: string;
  ifname: string;
  addresses: string[];
  liveAddresses: string[];
  mac: string;
  ports: string[];
  components: Record<string, string[]>;
  state: string;
  problem?: string;
  health?: string;
}

before(async () => {
  await sweepStaleNamespaces();
  await ensureBuilt();
  mkdirSync(dirs.conf, { recursive: true });
  for (const n of NETS) {
    const confs = chainConfs({ name: n.name, backend: n.backend, dataDir: dirs.data, subnet: n.subnet });
    const plugins = confs.map(({ name: _n, cniVersion: _v, ...p }) =>
      p["type"] === "bridge" && n.backend === "nftables" ? { ...p, macspoofchk: true } : p,
    );
    writeFileSync(
      join(dirs.conf, `10-${n.name}.conflist`),
      JSON.stringify({ cniVersion: "1.0.0", name: n.name, plugins }),
    );
  }
  host = await nets.create("lhost");
  await host.sh(["ip", "link", "set", "lo", "up"]);
  for (const tag of ["la", "lb", "lc"]) containers.push(await nets.create(tag));
  await add(0, containers[0]!, "ctr-nft-a", 18080);
  await add(1, containers[1]!, "ctr-ipt-b", 18081);
  await add(1, containers[2]!, "ctr-ipt-gone", 18082);
  // behind cni-nft's back: the container's namespace goes, nothing is DELeted
  await containers[2]!.destroy();
});
after(async () => {
  await nets.destroyAll();
  tmp.remove();
});

async function rows(args: string[] = []): Promise<Row[]> {
  const r = await cli(["list", "--json", ...args]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return JSON.parse(r.stdout) as Row[];
}

test("list --json: each attachment with its live addresses, ports and the backend of each component", async () => {
  const all = await rows();
  assert.deepEqual(
    all.map((r) => [r.network, r.containerId, r.ifname]),
    [
      [NETS[1]!.name, "ctr-ipt-b", "eth0"],
      [NETS[1]!.name, "ctr-ipt-gone", "eth0"],
      [NETS[0]!.name, "ctr-nft-a", "eth0"],
    ],
  );
  const [b, gone, a] = all as [Row, Row, Row];
  assert.deepEqual(a.components, {
    masquerade: ["nftables"],
    portmap: ["nftables"],
    firewall: ["nftables"],
    spoofcheck: ["nftables"],
  });
  assert.deepEqual(b.components, { masquerade: ["iptables"], portmap: ["iptables"], firewall: ["iptables"] });
  assert.equal(a.state, "up");
  assert.deepEqual(a.liveAddresses, ["10.71.0.2/24"]);
  assert.deepEqual(a.addresses, ["10.71.0.2/24"]);
  assert.match(a.mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  assert.deepEqual(a.ports, ["18080/tcp->80"]);
  assert.equal(b.state, "up");
  assert.deepEqual(b.liveAddresses, ["10.72.0.2/24"]);
  assert.equal(gone.state, "netns-gone");
  assert.match(gone.problem ?? "", /network namespace .* is gone/);
  // its host state is still there: the row says where, so the operator knows what DEL or GC removes
  assert.deepEqual(gone.components.masquerade, ["iptables"]);
});

test("list NETWORK filters; an unknown network is an error that says what to do", async () => {
  assert.deepEqual(
    (await rows([NETS[0]!.name])).map((r) => r.containerId),
    ["ctr-nft-a"],
  );
  const r = await cli(["list", "no-such-net"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no attachment and no network config named "no-such-net".*run 'cni-nft list'/);
});

test("list: aligned human table, no colour in a pipe, the gone attachment marked", async () => {
  const r = await cli(["list"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stdout.includes(ESC), "no escape sequence in a pipe");
  const lines = r.stdout.trimEnd().split("\n");
  assert.equal(lines.length, 4);
  assert.match(
    lines[0]!,
    /^NETWORK +CONTAINER +IF +NETNS +ADDRESSES +MAC +PORTS +MASQ +PORTMAP +FIREWALL +SPOOFCHK +STATE$/,
  );
  const col = lines[0]!.indexOf("MASQ");
  for (const l of lines.slice(1)) assert.match(l.slice(col), /^(nft|ipt) /);
  assert.match(lines[1]!, /ctr-ipt-b .* 18081\/tcp->80 +ipt +ipt +ipt +- +up$/);
  assert.match(lines[2]!, /ctr-ipt-gone .*netns-gone: network namespace .* is gone$/);
  assert.match(lines[3]!, /ctr-nft-a .* nft +nft +nft +nft +up$/);
});

test("list: colour on a terminal, none with NO_COLOR", async () => {
  const script = (extra: string) =>
    host.run(["script", "-qec", `${extra}${CLI} list`, "/dev/null"], { env: env(), timeoutMs: 120_000 });
  const tty = await script("");
  assert.equal(tty.code, 0, tty.stderr);
  assert.ok(tty.stdout.includes(`${ESC}[32mup${ESC}[0m`), tty.stdout);
  const plain = await script("NO_COLOR=1 ");
  assert.ok(!plain.stdout.includes(`${ESC}[3`), plain.stdout);
});

test("list --check: health per attachment; progress on a terminal only, JSON events with --json", async () => {
  const piped = await cli(["list", "--check"]);
  assert.equal(piped.code, 0, piped.stderr);
  assert.equal(piped.stderr, "");
  assert.match(piped.stdout, /HEALTH/);
  const checked = await rows(["--check"]);
  assert.equal(checked.find((r) => r.containerId === "ctr-nft-a")!.health, "ok");
  assert.equal(checked.find((r) => r.containerId === "ctr-ipt-b")!.health, "ok");
  assert.notEqual(checked.find((r) => r.containerId === "ctr-ipt-gone")!.health, "ok");

  const tty = await host.run(["script", "-qec", `${CLI} list --check`, "/dev/null"], {
    env: env(),
    timeoutMs: 120_000,
  });
  assert.equal(tty.code, 0, tty.stdout);
  assert.ok(/check [0-3]\/3 /.test(tty.stdout) && tty.stdout.includes(`\r${ESC}[2Kcheck `), tty.stdout);
  assert.match(tty.stdout, /check: 3\/3 done in [\d.]+ s \([\d.]+\/s\), 1 failed\r?\n/);

  const events = await cli(["list", "--check", "--json"]);
  const lines = events.stderr
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { event: string });
  assert.deepEqual(
    lines.map((e) => e.event),
    ["start", "begin", "end", "begin", "end", "begin", "end", "summary"],
  );
});

interface Inspected {
  attachment: Row;
  nftables: Record<string, string[]>;
  iptables: Record<string, string[]>;
  ipam: { type: string; reservations: { address: string; file: string; content?: string; ours: boolean }[] };
  conntrackEntries: number | null;
  plugins: { plugin: string; made: string[] }[];
  cachedResult: { ips: { address: string }[] };
  config: { name: string; plugins: { type: string }[] };
}

async function inspected(what: string): Promise<Inspected[]> {
  const r = await cli(["inspect", what, "--json"]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return JSON.parse(r.stdout) as Inspected[];
}

test("inspect --json by container ID, address and host port: rules by table, reservation, plugins", async () => {
  const [a] = await inspected("ctr-nft-a");
  assert.ok(a);
  assert.deepEqual(Object.keys(a.iptables), []);
  assert.deepEqual(Object.keys(a.nftables).sort(), [
    "bridge cni_nft_spoofcheck",
    "inet cni_nft_firewall",
    "inet cni_nft_masquerade",
    "inet cni_nft_portmap",
  ]);
  assert.ok(
    a.nftables["inet cni_nft_masquerade"]!.some((l) => /: "masq4-[0-9a-f]{12}"/.test(l)),
    "the masquerade element is shown",
  );
  for (const lines of Object.values(a.nftables)) assert.ok(lines.length > 0);
  assert.ok(
    Object.values(a.nftables)
      .flat()
      .some((l) => l.includes("18080")),
    "the port mapping is shown",
  );
  assert.deepEqual(
    a.ipam.reservations.map((r) => [r.address, r.ours]),
    [["10.71.0.2", true]],
  );
  assert.equal(a.ipam.type, "host-local");
  assert.equal(typeof a.conntrackEntries, "number");
  assert.deepEqual(
    a.plugins.map((p) => p.plugin),
    ["bridge", "portmap", "firewall"],
  );
  assert.ok(a.plugins[0]!.made.some((m) => m.startsWith("masquerade: ")));
  assert.ok(a.plugins[1]!.made.some((m) => m.startsWith("portmap: ")));
  assert.ok(a.plugins[2]!.made.some((m) => m.startsWith("firewall: ")));
  assert.equal(a.cachedResult.ips[0]!.address, "10.71.0.2/24");
  assert.equal(a.config.name, NETS[0]!.name);

  const [b] = await inspected("10.72.0.2");
  assert.equal(b!.attachment.containerId, "ctr-ipt-b");
  assert.deepEqual(Object.keys(b!.nftables), []);
  assert.ok(b!.iptables["iptables nat"]!.some((l) => l.includes("CNI-DN-")));
  assert.ok(b!.iptables["iptables filter"]!.some((l) => l.includes("10.72.0.2/32")));
  const [byPort] = await inspected("18081/tcp");
  assert.equal(byPort!.attachment.containerId, "ctr-ipt-b");
  assert.equal((await inspected("18081"))[0]!.attachment.containerId, "ctr-ipt-b");
});

test("inspect: human sections; the gone attachment still shows what the host holds; no match says what to do", async () => {
  const r = await cli(["inspect", "ctr-ipt-gone"]);
  assert.equal(r.code, 0, r.stderr);
  for (const section of [
    "nftables",
    "iptables",
    "IPAM (host-local)",
    "conntrack",
    "plugins",
    "cached result",
    "config",
  ])
    assert.match(r.stdout, new RegExp(`^${section.replace(/[()]/g, "\\$&")}$`, "m"));
  assert.match(r.stdout, /state {7}netns-gone: network namespace/);
  assert.match(r.stdout, /^ {2}iptables nat\n {4}-A /m);
  const none = await cli(["inspect", "10.99.99.99"]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /no attachment .* "10\.99\.99\.99"; 'cni-nft list' shows what there is/);
  const help = await cli(["inspect", "--help"]);
  assert.match(help.stdout, /Examples:\n {2}cni-nft inspect/);
});

test("gc --all: every network collected; progress and summary on a terminal, none in a pipe", async () => {
  const piped = await cli(["gc", "--all"]);
  assert.equal(piped.code, 0, piped.stderr);
  assert.equal(piped.stderr, "");
  assert.match(piped.stdout, /^gc: 0 networks collected, 2 skipped/);
  const tty = await host.run(["script", "-qec", `${CLI} gc --all`, "/dev/null"], {
    env: env(),
    timeoutMs: 120_000,
  });
  assert.equal(tty.code, 0, tty.stdout);
  assert.match(tty.stdout, /gc: 2\/2 done in [\d.]+ s/);
  const json = await cli(["gc", "--all", "--json"]);
  assert.deepEqual(JSON.parse(json.stdout), {
    ran: [],
    skipped: [NETS[1]!.name, NETS[0]!.name].sort(),
    failed: [],
  });
  assert.equal(json.stderr.trim().split("\n").length, 6);
});
