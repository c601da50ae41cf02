/**
 * `cni-nft migrate` on a live "host" namespace with real packets: containers attached through
 * the CLI (so libcni's cache holds them) on a conflist like podman's (bridge with ipMasq ->
 * portmap -> firewall), long-lived flows held open across the move (TCP through a host port, TCP
 * through masquerade, UDP through a host port), each counted message by message. Sources:
 * cni-nft's iptables, upstream 1.1.1's iptables plugins, upstream's nftables portmap layout; the
 * way back to iptables; dry-run; a rerun after success; SIGKILL at several points then rerun; a
 * container added later lands on the recorded backend; DEL leaves nothing on either framework.
 */
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { NetnsPool, link, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { OUR_BIN, UPSTREAM_BIN, ensureBuilt, firewallState, tempDir } from "../helpers/cni.js";
import { startFlow, startFlowServer, stopFlows, type Flow, type FlowServer } from "../helpers/flow.js";
import { accountUdp, meterUdpFlow, type UdpMeter } from "../helpers/flow-meter.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";
import { upstreamNftPortmap } from "../helpers/upstream-layouts.js";

const CLI = join(OUR_BIN, "cni-nft");
const HOST_V4 = "203.0.113.1";
const OUT_V4 = "203.0.113.2";

interface Host {
  host: Netns;
  out: Netns;
  dirs: { conf: string; cache: string; records: string; data: string };
  env: Record<string, string>;
}

function conflist(name: string, subnet: string, dataDir: string, firewall: object = {}): object {
  return {
    cniVersion: "1.0.0",
    name,
    plugins: [
      {
        type: "bridge",
        bridge: `${name.slice(0, 8)}br`,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: { type: "host-local", dataDir, ranges: [[{ subnet }]], routes: [{ dst: "0.0.0.0/0" }] },
      },
      { type: "portmap", capabilities: { portMappings: true } },
      { type: "firewall", ...firewall },
    ],
  };
}

/**
 * A hang guard, not a deadline: a migrate of a few attachments is some 15 nft and iptables runs
 * each, which a machine at load 30 stretches from under a second to minutes (120 s was hit).
 * How long each migrate took is printed.
 */
const CLI_HANG_GUARD_MS = 900_000;

async function cliRun(
  h: Host,
  args: string[],
  extra: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const started = Date.now();
  const r = await h.host.run([CLI, ...args], { env: { ...h.env, ...extra }, timeoutMs: CLI_HANG_GUARD_MS });
  if (args[0] === "migrate") console.log(`# cni-nft ${args.join(" ")}: ${Date.now() - started} ms`);
  return r;
}

async function cliOk(h: Host, args: string[], extra: Record<string, string> = {}): Promise<string> {
  const r = await cliRun(h, args, extra);
  if (r.code !== 0) throw new Error(`cni-nft ${args.join(" ")} failed (${r.code}): ${r.stdout} ${r.stderr}`);
  return r.stdout;
}

async function makeHost(nets: NetnsPool, tag: string, root: string): Promise<Host> {
  const [host, out] = await Promise.all([nets.create(`${tag}h`), nets.create(`${tag}o`)]);
  await link(host, "uplink", out, "eth0");
  await host.sh(["ip", "addr", "add", `${HOST_V4}/24`, "dev", "uplink"]);
  await out.sh(["ip", "addr", "add", `${OUT_V4}/24`, "dev", "eth0"]);
  const dirs = {
    conf: join(root, tag, "net.d"),
    cache: join(root, tag, "cache"),
    records: join(root, tag, "records"),
    data: join(root, tag, "data"),
  };
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  const env = {
    PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    NETCONFPATH: dirs.conf,
    CNI_PATH: OUR_BIN,
    CNI_CACHE_DIR: dirs.cache,
    CNI_NFT_NETWORKS_DIR: dirs.records,
  };
  return { host, out, dirs, env };
}

/** A container attached through the CLI with one host port each for TCP and UDP. */
async function attach(
  h: Host,
  nets: NetnsPool,
  network: string,
  id: string,
  ports: { tcp: number; udp: number },
  extra: Record<string, string> = {},
): Promise<{ ns: Netns; ip: string }> {
  const ns = await nets.create(id.slice(0, 10));
  const caps = {
    portMappings: [
      { hostPort: ports.tcp, containerPort: 80, protocol: "tcp" },
      { hostPort: ports.udp, containerPort: 53, protocol: "udp" },
    ],
  };
  const out = await cliOk(h, ["add", network, ns.path, "--json"], {
    CNI_CONTAINERID: id,
    CAP_ARGS: JSON.stringify(caps),
    ...extra,
  });
  const ip = (JSON.parse(out) as { ips: Array<{ address: string }> }).ips[0]!.address.split("/")[0]!;
  return { ns, ip };
}

interface Flows {
  tcp: { hostPortTcp: Flow; masqTcp: Flow };
  hostPortUdp: Flow;
  /** The UDP flow's datagrams counted hop by hop (test/helpers/flow-meter.ts), from before it started. */
  udpMeter: { meter: UdpMeter; before: Awaited<ReturnType<UdpMeter["read"]>> };
}

async function openFlows(
  h: Host,
  ctr: { ns: Netns; ip: string },
  ports: { tcp: number; udp: number },
): Promise<Flows> {
  const tcp = {
    hostPortTcp: await startFlow(h.out, "tcp", HOST_V4, ports.tcp),
    masqTcp: await startFlow(ctr.ns, "tcp", OUT_V4, 9000),
  };
  const path = {
    client: h.out,
    host: h.host,
    server: ctr.ns,
    hostPort: ports.udp,
    serverIp: ctr.ip,
    serverPort: 53,
  };
  const meter = await meterUdpFlow(path);
  const before = await meter.read();
  return { tcp, hostPortUdp: await startFlow(h.out, "udp", HOST_V4, ports.udp), udpMeter: { meter, before } };
}

/**
 * Every flow kept its connection and got every message back. TCP cannot lose one silently (a
 * dropped segment is sent again; a gap would close or stall the connection). The UDP flow's
 * datagrams are placed hop by hop (flow-meter.ts): none may go missing in the host, between
 * its first and last netfilter hook, where the migration changes rules, NAT bindings and
 * verdicts. One lost elsewhere (on a link, in a socket: nothing a migration touches) is reported
 * and accepted only when the kernel counted drops while the flow ran; otherwise it fails too.
 * A late echo is not a loss: the client waits up to 10 s for every echo before it reports.
 */
async function assertNoLoss(flows: Flows): Promise<void> {
  for (const [name, f] of [...Object.entries(flows.tcp), ["hostPortUdp", flows.hostPortUdp]] as Array<
    [string, Flow]
  >) {
    const s = await f.stop();
    assert.deepEqual(s.errors, [], `${name}: ${JSON.stringify(s)}`);
    assert.ok(s.sent > 50, `${name} ran: ${JSON.stringify(s)}`);
    if (name !== "hostPortUdp") {
      assert.equal(
        s.received,
        s.sent,
        `${name} lost ${s.sent - s.received} of ${s.sent}: ${JSON.stringify(s)}`,
      );
      continue;
    }
    const { meter, before } = flows.udpMeter;
    const account = accountUdp(before, await meter.read(), s.sent, s.received);
    await meter.remove();
    const detail = `${account.text}; ${JSON.stringify(s)}`;
    assert.equal(account.inHost, 0, `${name}: dropped or mistranslated in the host: ${detail}`);
    if (account.lost === 0) continue;
    assert.ok(account.machineDrops > 0, `${name}: lost with no drop the kernel counted: ${detail}`);
    console.log(`# ${name}: ${detail} (outside the host's netfilter, dropped by the machine)`);
  }
}

/** cni-nft's and upstream's nftables tables (not iptables-nft's, which nft lists too). */
const nftTables = async (h: Host): Promise<string> => {
  const tables = [
    "inet cni_nft_portmap",
    "inet cni_plugins_masquerade",
    "inet cni_nft_firewall",
    "ip cni_hostport",
  ];
  const out = await Promise.all(tables.map((t) => h.host.run(["nft", "list", "table", ...t.split(" ")])));
  return out.map((r) => r.stdout).join("\n");
};
const iptRules = async (h: Host): Promise<string> =>
  (await h.host.sh(["iptables-save"])).replace(/^#.*\n/gm, "");

before(async () => {
  await sweepStaleNamespaces();
  await ensureBuilt();
});

describe("cni-nft migrate with live flows", () => {
  const nets = new NetnsPool();
  const tmp = tempDir("migrate");
  const servers: Array<EchoServer | FlowServer> = [];
  let h: Host;
  // A subtest's servers and flows end with it (they burned CPU through later subtests before).
  afterEach(() => {
    const notes = servers.splice(0).map((s) => s.stop()?.stderr ?? "");
    stopFlows();
    assert.deepEqual(
      notes.filter((n) => n.includes("loop:")),
      [],
      "a flow server saw a packet loop",
    );
  });
  after(async () => {
    stopFlows();
    await nets.destroyAll();
    tmp.remove();
  });

  test("cni-nft iptables -> nftables -> iptables: zero loss, dry-run, rerun, record, later ADD, DEL", async () => {
    h = await makeHost(nets, "mgA", tmp.path);
    const network = `mg${process.pid}a`;
    writeFileSync(
      join(h.dirs.conf, "10-a.conflist"),
      JSON.stringify(conflist(network, "10.71.0.0/24", h.dirs.data)),
    );
    servers.push(await startFlowServer(h.out, "tcp", "0.0.0.0", 9000));
    const ports = { tcp: 8080, udp: 5353 };
    const c1 = await attach(h, nets, network, "mga-c1", ports);
    servers.push(
      await startFlowServer(c1.ns, "tcp", "0.0.0.0", 80),
      await startFlowServer(c1.ns, "udp", "0.0.0.0", 53),
    );
    assert.match(await iptRules(h), /CNI-HOSTPORT-DNAT/);
    assert.doesNotMatch(await nftTables(h), /cni_nft_portmap|cni_plugins_masquerade/);

    // Dry run: a plan, nothing changes.
    const before = await firewallState(h.host);
    const plan = JSON.parse(await cliOk(h, ["migrate", "--to", "nftables", "--dry-run", "--json"])) as {
      attachments: Array<{ steps: Array<{ component: string; action: string; from?: string[] }> }>;
    };
    assert.deepEqual(
      plan.attachments[0]!.steps.map((s) => `${s.component} ${s.action} ${s.from?.join("+")}`),
      ["masquerade would move iptables", "portmap would move iptables", "firewall would move iptables"],
    );
    assert.equal(await firewallState(h.host), before);

    let flows = await openFlows(h, c1, ports);
    const out = await cliOk(h, ["migrate", "--to", "nftables", "--json"]);
    const report = JSON.parse(out) as {
      ok: boolean;
      attachments: Array<{ steps: Array<{ action: string }> }>;
    };
    assert.ok(report.ok, out);
    assert.deepEqual(
      report.attachments[0]!.steps.map((s) => s.action),
      ["moved", "moved", "moved"],
    );
    await new Promise((r) => setTimeout(r, 500));
    await assertNoLoss(flows);
    // Only nftables holds it now; new connections work through it.
    assert.doesNotMatch(
      await iptRules(h),
      /CNI-HOSTPORT-DNAT -p tcp|CNI-DN-|-A CNI-FORWARD -s 10\.71|-j CNI-[0-9a-f]{24}/,
    );
    assert.match(await nftTables(h), /10\.71\.0\.\d+ \. 80/);
    await cliOk(h, ["check", network, c1.ns.path], { CNI_CONTAINERID: "mga-c1" });

    // A rerun changes nothing.
    const settled = await firewallState(h.host);
    const again = JSON.parse(await cliOk(h, ["migrate", "--to", "nftables", "--json"])) as typeof report;
    assert.deepEqual(
      again.attachments[0]!.steps.map((s) => s.action),
      ["unchanged", "unchanged", "unchanged"],
    );
    assert.equal(await firewallState(h.host), settled);

    // A container added later through the unchanged config lands on nftables (the record).
    const c2 = await attach(h, nets, network, "mga-c2", { tcp: 8081, udp: 5354 });
    assert.match(await nftTables(h), new RegExp(`${c2.ip.replace(/\./g, "\\.")} \\. 80`));
    assert.doesNotMatch(await iptRules(h), new RegExp(c2.ip.replace(/\./g, "\\.")));

    // And the way back, flows open again.
    flows = await openFlows(h, c1, ports);
    const back = JSON.parse(await cliOk(h, ["migrate", "--to", "iptables", "--json"])) as typeof report;
    assert.ok(back.ok);
    await new Promise((r) => setTimeout(r, 500));
    await assertNoLoss(flows);
    assert.match(await iptRules(h), new RegExp(`--to-destination ${c2.ip.replace(/\./g, "\\.")}:80`));
    assert.doesNotMatch(await nftTables(h), /10\.71\.0\.\d+ \. 80|ip saddr 10\.71/);
    await cliOk(h, ["check", network, c2.ns.path], { CNI_CONTAINERID: "mga-c2" });

    // DEL leaves nothing on either framework.
    await cliOk(h, ["del", network, c1.ns.path], { CNI_CONTAINERID: "mga-c1" });
    await cliOk(h, ["del", network, c2.ns.path], { CNI_CONTAINERID: "mga-c2" });
    const final = await firewallState(h.host);
    assert.doesNotMatch(final, /10\.71\.0\.\d+/);
  });

  test("upstream 1.1.1's iptables plugins -> nftables, flows open; upstream's DEL after the way back", async () => {
    const u = await makeHost(nets, "mgB", tmp.path);
    const network = `mg${process.pid}b`;
    writeFileSync(
      join(u.dirs.conf, "10-b.conflist"),
      JSON.stringify(conflist(network, "10.72.0.0/24", u.dirs.data)),
    );
    servers.push(await startFlowServer(u.out, "tcp", "0.0.0.0", 9000));
    const ports = { tcp: 8090, udp: 5363 };
    const c = await attach(u, nets, network, "mgb-c1", ports, { CNI_PATH: UPSTREAM_BIN });
    servers.push(
      await startFlowServer(c.ns, "tcp", "0.0.0.0", 80),
      await startFlowServer(c.ns, "udp", "0.0.0.0", 53),
    );
    const flows = await openFlows(u, c, ports);
    const out = await cliOk(u, ["migrate", "--to", "nftables", "--json", network]);
    assert.ok((JSON.parse(out) as { ok: boolean }).ok, out);
    await new Promise((r) => setTimeout(r, 500));
    await assertNoLoss(flows);
    assert.doesNotMatch(await iptRules(u), /CNI-DN-|-j CNI-[0-9a-f]{24}/);
    // Back to iptables, then upstream's own DEL cleans up what cni-nft wrote.
    await cliOk(u, ["migrate", "--to", "iptables", network]);
    await cliOk(u, ["del", network, c.ns.path], {
      CNI_CONTAINERID: "mgb-c1",
      CNI_PATH: UPSTREAM_BIN,
      // Upstream's portmap DEL does nothing without the mappings (podman passes them on DEL).
      CAP_ARGS: JSON.stringify({
        portMappings: [
          { hostPort: ports.tcp, containerPort: 80, protocol: "tcp" },
          { hostPort: ports.udp, containerPort: 53, protocol: "udp" },
        ],
      }),
    });
    assert.doesNotMatch(await firewallState(u.host), /10\.72\.0\.\d+/);
  });

  test("upstream's nftables portmap layout -> cni-nft's nftables table", async () => {
    const u = await makeHost(nets, "mgC", tmp.path);
    const network = `mg${process.pid}c`;
    writeFileSync(
      join(u.dirs.conf, "10-c.conflist"),
      JSON.stringify(conflist(network, "10.73.0.0/24", u.dirs.data)),
    );
    const ports = { tcp: 8100, udp: 5373 };
    const c = await attach(u, nets, network, "mgc-c1", ports);
    // Make it look like upstream's nftables portmap had set it up: its rules, not cni-nft's.
    await cliOk(u, ["migrate", "--to", "nftables", network]);
    const upstreamLayout = async (): Promise<void> => {
      await u.host.sh(["nft", "flush", "map", "inet", "cni_nft_portmap", "dnat_any4"]);
      await u.host.sh(["nft", "flush", "map", "inet", "cni_nft_portmap", "snat_sub4"]);
      await u.host.sh(["nft", "flush", "set", "inet", "cni_nft_portmap", "owners"]);
      await u.host.sh(
        ["nft", "-f", "-"],
        upstreamNftPortmap(
          "mgc-c1",
          [
            { hostPort: ports.tcp, containerPort: 80, protocol: "tcp" },
            { hostPort: ports.udp, containerPort: 53, protocol: "udp" },
          ],
          [c.ip],
        ),
      );
    };
    await upstreamLayout();
    await cliOk(u, ["check", network, c.ns.path], { CNI_CONTAINERID: "mgc-c1" });
    servers.push(await startFlowServer(u.out, "tcp", "0.0.0.0", 9000));
    servers.push(
      await startFlowServer(c.ns, "tcp", "0.0.0.0", 80),
      await startFlowServer(c.ns, "udp", "0.0.0.0", 53),
    );
    const flows = await openFlows(u, c, ports);
    const out = await cliOk(u, ["migrate", "--to", "nftables", "--json", network]);
    const steps = (
      JSON.parse(out) as {
        attachments: Array<{ steps: Array<{ component: string; action: string; from?: string[] }> }>;
      }
    ).attachments[0]!.steps;
    assert.deepEqual(
      steps.map((s) => `${s.component} ${s.action} ${s.from?.join("+") ?? ""}`),
      ["masquerade unchanged ", "portmap moved upstream-nftables", "firewall unchanged "],
    );
    await new Promise((r) => setTimeout(r, 500));
    await assertNoLoss(flows);
    assert.doesNotMatch(await nftTables(u), /comment "mgc-c1"/);

    // The other way from the same source: upstream's nftables layout again, then to iptables.
    await upstreamLayout();
    const back = await openFlows(u, c, ports);
    const toIpt = JSON.parse(await cliOk(u, ["migrate", "--to", "iptables", "--json", network])) as {
      ok: boolean;
      attachments: Array<{ steps: Array<{ component: string; action: string; from?: string[] }> }>;
    };
    assert.ok(toIpt.ok);
    assert.deepEqual(
      toIpt.attachments[0]!.steps.map((s) => `${s.component} ${s.action} ${s.from?.join("+") ?? ""}`),
      ["masquerade moved nftables", "portmap moved upstream-nftables", "firewall moved nftables"],
    );
    await new Promise((r) => setTimeout(r, 500));
    await assertNoLoss(back);
    // No container's entry (the subnet's shared masquerade chain stays: the hand-made upstream
    // state above emptied the maps that referred to it).
    assert.doesNotMatch(await nftTables(u), /comment "mgc-c1"|10\.73\.0\.[1-9]/);
    assert.match(await iptRules(u), new RegExp(`--to-destination ${c.ip.replace(/\./g, "\\.")}:80`));
    await cliOk(u, ["check", network, c.ns.path], { CNI_CONTAINERID: "mgc-c1" });
    await cliOk(u, ["del", network, c.ns.path], { CNI_CONTAINERID: "mgc-c1" });
    assert.doesNotMatch(await firewallState(u.host), /10\.73\.0\.\d+/);
  });

  test("ingressPolicy isolated: the bridge's isolation moves too; after DEL nothing is left on either framework", async () => {
    const h = await makeHost(nets, "mgE", tmp.path);
    const network = `mg${process.pid}e`;
    writeFileSync(
      join(h.dirs.conf, "10-e.conflist"),
      JSON.stringify(conflist(network, "10.75.0.0/24", h.dirs.data, { ingressPolicy: "isolated" })),
    );
    servers.push(await startEchoServer(h.out, "tcp", "0.0.0.0", 9100));
    const c1 = await attach(h, nets, network, "mge-c1", { tcp: 8300, udp: 5500 });
    const c2 = await attach(h, nets, network, "mge-c2", { tcp: 8301, udp: 5501 });
    servers.push(await startEchoServer(c2.ns, "tcp", "0.0.0.0", 7000));
    // Isolated: out to the world, not to the neighbour on the same bridge.
    const isolatedNow = async (where: string): Promise<void> => {
      assert.equal(await echo(c1.ns, "tcp", OUT_V4, 9100), HOST_V4, `${where}: c1 reaches the outside`);
      assert.equal(await echo(c1.ns, "tcp", c2.ip, 7000, 1000), undefined, `${where}: c1 reaches c2`);
    };
    await isolatedNow("on iptables");
    assert.match(await iptRules(h), /CNI-ISOLATION-STAGE-1 -i mg\d+ebr -o mg\d+ebr/);

    const plan = JSON.parse(await cliOk(h, ["migrate", "--to", "nftables", "--dry-run", "--json"])) as {
      attachments: Array<{ steps: Array<{ component: string; action: string }> }>;
    };
    assert.deepEqual(
      plan.attachments[0]!.steps.map((s) => `${s.component} ${s.action}`),
      ["masquerade would move", "portmap would move", "firewall would move", "isolation would move"],
    );
    const out = JSON.parse(await cliOk(h, ["migrate", "--to", "nftables", "--json"])) as { ok: boolean };
    assert.ok(out.ok);
    assert.doesNotMatch(await iptRules(h), /CNI-ISOLATION|-A CNI-FORWARD -[sd] 10\.75/);
    assert.match(await nftTables(h), /isolated_pairs[^}]*elements = \{ "mg\d+ebr" \. "mg\d+ebr" \}/);
    await isolatedNow("on nftables");
    for (const [i, c] of [c1, c2].entries())
      await cliOk(h, ["check", network, c.ns.path], { CNI_CONTAINERID: `mge-c${i + 1}` });

    // The way back moves it again, and once more to nftables; a rerun changes nothing.
    await cliOk(h, ["migrate", "--to", "iptables"]);
    assert.doesNotMatch(await nftTables(h), /elements = \{ "mg\d+ebr"/);
    await isolatedNow("back on iptables");
    await cliOk(h, ["migrate", "--to", "nftables"]);
    const again = JSON.parse(await cliOk(h, ["migrate", "--to", "nftables", "--json"])) as {
      attachments: Array<{ steps: Array<{ action: string }> }>;
    };
    assert.ok(again.attachments.every((a) => a.steps.every((s) => s.action === "unchanged")));

    for (const [i, c] of [c1, c2].entries())
      await cliOk(h, ["del", network, c.ns.path], { CNI_CONTAINERID: `mge-c${i + 1}` });
    // Nothing of the network on iptables (upstream's shared CNI-FORWARD and the operator's
    // CNI-ADMIN stay, as upstream's DEL leaves them); on nftables, no container's entries.
    assert.doesNotMatch(
      await iptRules(h),
      /CNI-ISOLATION|10\.75\.|CNI-DN-|CNI-HOSTPORT-DNAT -p|-j CNI-[0-9a-f]{24}/,
    );
    assert.doesNotMatch(await nftTables(h), /10\.75\./);
  });

  test("hostForward through a dropping nftables host chain moves with the firewall; flows kept", async () => {
    const h = await makeHost(nets, "mgF", tmp.path);
    const network = `mg${process.pid}f`;
    const hostForward = { nftables: { family: "inet", table: "hostfw", chain: "forward" } };
    writeFileSync(
      join(h.dirs.conf, "10-f.conflist"),
      JSON.stringify(conflist(network, "10.76.0.0/24", h.dirs.data, { hostForward })),
    );
    await h.host.sh(
      ["nft", "-f", "-"],
      "table inet hostfw {\n chain forward {\n  type filter hook forward priority filter; policy drop;\n }\n}\n",
    );
    const hostChain = async (): Promise<string> =>
      h.host.sh(["nft", "list", "chain", "inet", "hostfw", "forward"]);
    servers.push(await startFlowServer(h.out, "tcp", "0.0.0.0", 9000));
    const c = await attach(h, nets, network, "mgf-c1", { tcp: 8400, udp: 5600 });
    assert.match(await hostChain(), new RegExp(`ip saddr ${c.ip.replace(/\./g, "\\.")} accept`));
    for (const [target, want, gone] of [
      ["nftables", /meta mark & 0x00001000 == 0x00001000 accept/, /ip saddr 10\.76/],
      ["iptables", /ip saddr 10\.76\.0\.\d+ accept/, /meta mark/],
    ] as const) {
      const flow = await startFlow(c.ns, "tcp", OUT_V4, 9000);
      const r = JSON.parse(await cliOk(h, ["migrate", "--to", target, "--json"])) as { ok: boolean };
      assert.ok(r.ok);
      await new Promise((res) => setTimeout(res, 500));
      const st = await flow.stop();
      assert.deepEqual(st.errors, [], JSON.stringify(st));
      assert.ok(st.sent > 50 && st.received === st.sent, `to ${target}: ${JSON.stringify(st)}`);
      const chain = await hostChain();
      assert.match(chain, want, `on ${target}`);
      assert.doesNotMatch(chain, gone, `on ${target}`);
      await cliOk(h, ["check", network, c.ns.path], { CNI_CONTAINERID: "mgf-c1" });
    }
    await cliOk(h, ["del", network, c.ns.path], { CNI_CONTAINERID: "mgf-c1" });
    assert.doesNotMatch(await hostChain(), /accept/);
  });

  test("SIGKILL at several points: every component stays whole somewhere; a rerun completes", async () => {
    const k = await makeHost(nets, "mgD", tmp.path);
    const network = `mg${process.pid}d`;
    writeFileSync(
      join(k.dirs.conf, "10-d.conflist"),
      JSON.stringify(conflist(network, "10.74.0.0/24", k.dirs.data)),
    );
    const ctrs: Array<{ ns: Netns; ip: string }> = [];
    for (let i = 0; i < 6; i++)
      ctrs.push(await attach(k, nets, network, `mgd-c${i}`, { tcp: 8200 + i, udp: 5400 + i }));
    for (const c of ctrs) servers.push(await startEchoServer(c.ns, "tcp", "0.0.0.0", 80));
    servers.push(await startEchoServer(k.out, "tcp", "0.0.0.0", 9100));
    /** Real packets: each container answers on its host port and reaches the outside (masquerade). */
    const allWork = async (when: string): Promise<void> => {
      const results = await Promise.all(
        ctrs.map(async (c, j) => [
          await echo(k.out, "tcp", HOST_V4, 8200 + j),
          await echo(c.ns, "tcp", OUT_V4, 9100),
        ]),
      );
      for (const [j, [inbound, outbound]] of results.entries()) {
        assert.ok(inbound, `${when}: container ${j} does not answer on its host port`);
        assert.equal(outbound, HOST_V4, `${when}: container ${j} does not reach the outside`);
      }
    };
    await allWork("before");
    for (const [i, delay] of [150, 400, 700, 1000, 1500].entries()) {
      const target = i % 2 === 0 ? "nftables" : "iptables";
      const child = spawn(
        "ip",
        ["netns", "exec", k.host.name, CLI, "migrate", "--to", target, "--parallel", "2"],
        {
          env: k.env,
          stdio: "ignore",
        },
      );
      // Listening from the start: a run that finishes before the kill must not be waited for forever.
      const exited = new Promise((r) => child.on("exit", r));
      await new Promise((r) => setTimeout(r, delay));
      child.kill("SIGKILL");
      await exited;
      // Every container still checks out on one framework or the other.
      for (const [j, c] of ctrs.entries()) {
        const ids = { CNI_CONTAINERID: `mgd-c${j}` };
        const state = await firewallState(k.host);
        const dnat = new RegExp(`${c.ip.replace(/\./g, "\\.")}(:80| \\. 80)`);
        assert.match(state, dnat, `after a kill at ${delay} ms: container ${j} has a host port on neither`);
        void ids;
      }
      await allWork(`after a kill at ${delay} ms`);
    }
    const done = JSON.parse(await cliOk(k, ["migrate", "--to", "nftables", "--json"])) as { ok: boolean };
    assert.ok(done.ok);
    const again = JSON.parse(await cliOk(k, ["migrate", "--to", "nftables", "--json"])) as {
      attachments: Array<{ steps: Array<{ action: string }> }>;
    };
    assert.ok(again.attachments.every((a) => a.steps.every((s) => s.action === "unchanged")));
    for (const [j, c] of ctrs.entries())
      await cliOk(k, ["check", network, c.ns.path], { CNI_CONTAINERID: `mgd-c${j}` });
    for (const [j, c] of ctrs.entries())
      await cliOk(k, ["del", network, c.ns.path], { CNI_CONTAINERID: `mgd-c${j}` });
    assert.doesNotMatch(await firewallState(k.host), /10\.74\.0\.\d+/);
  });
});
