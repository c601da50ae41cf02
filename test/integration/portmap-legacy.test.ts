/**
 * portmap's nftables backend on a host upgraded while containers run: the table holds the
 * previous cni-nft layout (interval sets masq4/masq6 keyed source . container . proto . port, no
 * owners set), written here as that code wrote it. With real packets: the old containers keep
 * working through CHECK, a DEL without mappings before any upgrade, the upgrade that the first
 * ADD of the new code makes (outside and hairpin traffic of the remaining old container), and
 * DEL after it. The same was checked once against a build of the previous code (docs/portmap.md).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, link, type Netns } from "../helpers/netns.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";
import { cniOk } from "../helpers/cni.js";
import { nftOwnerComment } from "../../src/cni/attachment.js";

const TABLE = "cni_nft_portmap";
const HOST = "203.0.113.1";
const OUT = "203.0.113.2";
const GW = "10.77.0.1";
const NETWORK = "pmlegacy";
const v4 = (a: string): string => `::ffff:${a}`;

/** The previous layout's skeleton and one container's elements, as that code wrote them. */
function legacyState(owners: Array<{ comment: string; ip: string; hostPort: number }>): string {
  const t = `inet ${TABLE}`;
  const lines = [
    `add table ${t} { comment "CNI portmap (cni-nft): host ports to containers, state in maps" ; }`,
    `add chain ${t} hostports`,
    `add chain ${t} output { type nat hook output priority -100 ; policy accept ; }`,
    `add chain ${t} postrouting { type nat hook postrouting priority 100 ; policy accept ; }`,
    `add chain ${t} prerouting { type nat hook prerouting priority -100 ; policy accept ; }`,
  ];
  for (const f of [4, 6]) {
    const a = f === 4 ? "ipv4_addr" : "ipv6_addr";
    lines.push(
      `add map ${t} dnat_any${f} { type inet_proto . inet_service : ${a} . inet_service ; }`,
      `add map ${t} dnat_ip${f} { type ${a} . inet_proto . inet_service : ${a} . inet_service ; }`,
      `add map ${t} guard_any${f} { type inet_proto . inet_service : verdict ; }`,
      `add map ${t} guard_ip${f} { type ${a} . inet_proto . inet_service : verdict ; }`,
      `add set ${t} masq${f} { type ${a} . ${a} . inet_proto . inet_service ; flags interval ; }`,
    );
  }
  for (const f of [4, 6]) {
    const ip = f === 4 ? "ip" : "ip6";
    const nf = f === 4 ? "ipv4" : "ipv6";
    lines.push(
      `add rule ${t} hostports ${ip} daddr . meta l4proto . th dport vmap @guard_ip${f}`,
      `add rule ${t} hostports dnat ${ip} to ${ip} daddr . meta l4proto . th dport map @dnat_ip${f}`,
      `add rule ${t} hostports meta nfproto ${nf} meta l4proto . th dport vmap @guard_any${f}`,
      `add rule ${t} hostports meta nfproto ${nf} dnat ${ip} to meta l4proto . th dport map @dnat_any${f}`,
    );
  }
  lines.push(
    `add rule ${t} output fib daddr type local jump hostports`,
    `add rule ${t} prerouting fib daddr type local jump hostports`,
    `add rule ${t} postrouting ct status dnat ip saddr . ip daddr . meta l4proto . th dport @masq4 masquerade`,
    `add rule ${t} postrouting ct status dnat ip6 saddr . ip6 daddr . meta l4proto . th dport @masq6 masquerade`,
  );
  for (const o of owners) {
    lines.push(
      `add element ${t} dnat_any4 { tcp . ${o.hostPort} comment "${o.comment}" : ${o.ip} . 80 }`,
      `add element ${t} masq4 { 10.77.0.0/24 . ${o.ip} . tcp . 80 comment "${o.comment}", 127.0.0.1 . ${o.ip} . tcp . 80 comment "${o.comment}" }`,
    );
  }
  return lines.join("\n") + "\n";
}

describe("portmap nftables: the previous layout on an upgraded host", () => {
  const nets = new NetnsPool();
  let host: Netns;
  let out: Netns;
  let ctr: Netns;
  let server: EchoServer;
  const ips = ["10.77.0.2", "10.77.0.3", "10.77.0.4"];
  const prev = (ip: string): object => ({
    cniVersion: "1.1.0",
    interfaces: [{ name: "eth0", sandbox: ctr.path }],
    ips: [{ address: `${ip}/24`, gateway: GW, interface: 0 }],
  });
  const conf = (hostPort: number, ip?: string): object => ({
    cniVersion: "1.1.0",
    name: NETWORK,
    type: "portmap",
    backend: "nftables",
    capabilities: { portMappings: true },
    runtimeConfig: hostPort ? { portMappings: [{ hostPort, containerPort: 80, protocol: "tcp" }] } : {},
    ...(ip ? { prevResult: prev(ip) } : {}),
  });
  const call = (id: string): { containerId: string; netns: string } => ({ containerId: id, netns: ctr.path });
  const elements = async (): Promise<string> => host.sh(["nft", "list", "table", "inet", TABLE]);

  before(async () => {
    [host, out, ctr] = (await Promise.all(["lgh", "lgo", "lgc"].map((t) => nets.create(t)))) as [
      Netns,
      Netns,
      Netns,
    ];
    await link(host, "uplink", out, "eth0");
    await link(host, "ct0", ctr, "eth0");
    await host.sh(["ip", "addr", "add", `${HOST}/24`, "dev", "uplink"]);
    await host.sh(["ip", "addr", "add", `${GW}/24`, "dev", "ct0"]);
    await host.sh(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.route_localnet=1"]);
    await out.sh(["ip", "addr", "add", `${OUT}/24`, "dev", "eth0"]);
    // One namespace answers for the three container addresses (each is a DNAT target).
    for (const ip of ips) await ctr.sh(["ip", "addr", "add", `${ip}/24`, "dev", "eth0"]);
    await ctr.sh(["ip", "route", "add", "default", "via", GW]);
    server = await startEchoServer(ctr, "tcp", "::", 80);
    // Comments as the previous code wrote them: owner hash, network, interface, container.
    const comment = (id: string): string =>
      nftOwnerComment({ network: NETWORK, containerId: id, ifname: "eth0" });
    await host.sh(
      ["nft", "-f", "-"],
      legacyState([
        { comment: comment("old1"), ip: ips[0]!, hostPort: 8090 },
        { comment: comment("old2"), ip: ips[1]!, hostPort: 8091 },
      ]),
    );
  });
  after(async () => {
    server?.stop();
    await nets.destroyAll();
  });

  test("CHECK, DEL without mappings, upgrade by ADD, traffic of the old container, DEL after it", async () => {
    assert.equal(await echo(out, "tcp", HOST, 8090), v4(OUT));
    await cniOk(host, "portmap", "CHECK", conf(8090, ips[0]), call("old1"));
    await cniOk(host, "portmap", "CHECK", conf(8091, ips[1]), call("old2"));

    // DEL of an old container that carries nothing (no prevResult, no mappings): found by owner.
    await cniOk(host, "portmap", "DEL", conf(0), call("old1"));
    assert.equal(await echo(out, "tcp", HOST, 8090, 1000), undefined);
    assert.doesNotMatch(await elements(), new RegExp(`${ips[0]!.replaceAll(".", "\\.")} \\.`));

    // The first ADD of the new code upgrades the table in place.
    await cniOk(host, "portmap", "ADD", conf(8092, ips[2]), call("new1"));
    const upgraded = await elements();
    assert.doesNotMatch(upgraded, /masq[46]/);
    assert.match(upgraded, /set owners/);
    // The old container: outside, hairpin (masqueraded to the gateway) and localhost still work.
    assert.equal(await echo(out, "tcp", HOST, 8091), v4(OUT));
    assert.equal(await echo(ctr, "tcp", HOST, 8091), v4(GW));
    assert.equal(await echo(host, "tcp", "127.0.0.1", 8091), v4(GW));
    assert.equal(await echo(out, "tcp", HOST, 8092), v4(OUT));
    await cniOk(host, "portmap", "CHECK", conf(8091, ips[1]), call("old2"));
    await cniOk(host, "portmap", "CHECK", conf(8092, ips[2]), call("new1"));

    await cniOk(host, "portmap", "DEL", conf(8091, ips[1]), call("old2"));
    await cniOk(host, "portmap", "DEL", conf(0), call("new1"));
    assert.equal(await echo(out, "tcp", HOST, 8091, 1000), undefined);
    assert.equal(await echo(out, "tcp", HOST, 8092, 1000), undefined);
    assert.doesNotMatch(await elements(), /comment "[0-9a-f]{16}-/, "no element of any container is left");
  });
});
