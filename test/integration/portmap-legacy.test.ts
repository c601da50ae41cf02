/**
 * portmap's nftables backend on a host upgraded while containers run: the table holds the
 * previous cni-nft layout (interval sets masq4/masq6 keyed source . container . proto . port, no
 * owners set), written here as that code wrote it. With real packets: the old containers keep
 * working through CHECK, a DEL without mappings before any upgrade, the upgrade that the first
 * ADD of the new code makes (outside and hairpin traffic of the remaining old container), and
 * DEL after it. The same was checked once against a build of the previous code (docs/portmap.md).
 * Then the same for the layout after it (verdict maps snat4/snat6 jumping to a chain per subnet,
 * owner elements), and for the one before classes of conditions (a verdict element and a chain
 * per container with conditionsV4/V6), which the current one replaced.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, link, type Netns } from "../helpers/netns.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";
import { cniOk } from "../helpers/cni.js";
import { nftOwnerComment, nftOwnerHash, sha512Hex } from "../../src/cni/attachment.js";
import { ownerElement } from "../../plugins/meta/portmap/portmap_nftables_layout.js";
import { fileRecords } from "../../src/hoststate/records.js";
import {
  GUARDS_SKELETON,
  LEGACY_SKELETON,
  V2_SKELETON,
  layoutText,
} from "../unit/plugins/portmap-fixtures.js";

const TABLE = "cni_nft_portmap";
const HOST = "203.0.113.1";
const OUT = "203.0.113.2";
const GW = "10.77.0.1";
const NETWORK = "pmlegacy";
const v4 = (a: string): string => `::ffff:${a}`;

/** The previous layout's table with containers' elements, as that code wrote them. */
function legacyState(owners: Array<{ comment: string; ip: string; hostPort: number }>): string {
  const t = `inet ${TABLE}`;
  return layoutText(
    LEGACY_SKELETON,
    ...owners.flatMap((o) => [
      `add element ${t} dnat_any4 { tcp . ${o.hostPort} comment "${o.comment}" : ${o.ip} . 80 }`,
      `add element ${t} masq4 { 10.77.0.0/24 . ${o.ip} . tcp . 80 comment "${o.comment}", 127.0.0.1 . ${o.ip} . tcp . 80 comment "${o.comment}" }`,
    ]),
  );
}

interface Upgraded {
  host: Netns;
  out: Netns;
  ctr: Netns;
  ips: string[];
  conf: (hostPort: number, ip?: string) => object;
  call: (id: string) => { containerId: string; netns: string };
  table: () => Promise<string>;
}

/**
 * A host, an outside namespace and one container namespace answering for three addresses, with
 * `state` (an old layout's table for old1 on ips[0]:8090 and old2 on ips[1]:8091) written by nft.
 */
function onUpgradedHost(
  title: string,
  tag: string,
  state: (ips: string[]) => string,
  body: (u: Upgraded) => Promise<void>,
): void {
  describe(title, () => {
    const nets = new NetnsPool();
    let server: EchoServer | undefined;
    const ips = ["10.77.0.2", "10.77.0.3", "10.77.0.4"];
    const u = { ips } as Upgraded;
    const prev = (ip: string): object => ({
      cniVersion: "1.1.0",
      interfaces: [{ name: "eth0", sandbox: u.ctr.path }],
      ips: [{ address: `${ip}/24`, gateway: GW, interface: 0 }],
    });
    u.conf = (hostPort, ip) => ({
      cniVersion: "1.1.0",
      name: NETWORK,
      type: "portmap",
      backend: "nftables",
      capabilities: { portMappings: true },
      runtimeConfig: hostPort ? { portMappings: [{ hostPort, containerPort: 80, protocol: "tcp" }] } : {},
      ...(ip ? { prevResult: prev(ip) } : {}),
    });
    u.call = (id) => ({ containerId: id, netns: u.ctr.path });
    u.table = () => u.host.sh(["nft", "list", "table", "inet", TABLE]);

    before(async () => {
      [u.host, u.out, u.ctr] = (await Promise.all(["h", "o", "c"].map((t) => nets.create(`${tag}${t}`)))) as [
        Netns,
        Netns,
        Netns,
      ];
      await link(u.host, "uplink", u.out, "eth0");
      await link(u.host, "ct0", u.ctr, "eth0");
      await u.host.sh(["ip", "addr", "add", `${HOST}/24`, "dev", "uplink"]);
      await u.host.sh(["ip", "addr", "add", `${GW}/24`, "dev", "ct0"]);
      await u.host.sh(["sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.route_localnet=1"]);
      await u.out.sh(["ip", "addr", "add", `${OUT}/24`, "dev", "eth0"]);
      // One namespace answers for the three container addresses (each is a DNAT target).
      for (const ip of ips) await u.ctr.sh(["ip", "addr", "add", `${ip}/24`, "dev", "eth0"]);
      await u.ctr.sh(["ip", "route", "add", "default", "via", GW]);
      server = await startEchoServer(u.ctr, "tcp", "::", 80);
      await u.host.sh(["nft", "-f", "-"], state(ips));
    });
    after(async () => {
      server?.stop();
      await nets.destroyAll();
    });

    test("CHECK, DEL without mappings, upgrade by ADD, traffic of the old container, DEL after it", () =>
      body(u));
  });
}

/** After the upgrade: CHECK old2 and new1, DEL both (new1 without mappings), their ports closed. */
async function checkThenDelete(u: Upgraded): Promise<void> {
  await cniOk(u.host, "portmap", "CHECK", u.conf(8091, u.ips[1]), u.call("old2"));
  await cniOk(u.host, "portmap", "CHECK", u.conf(8092, u.ips[2]), u.call("new1"));

  await cniOk(u.host, "portmap", "DEL", u.conf(8091, u.ips[1]), u.call("old2"));
  await cniOk(u.host, "portmap", "DEL", u.conf(0), u.call("new1"));
  assert.equal(await echo(u.out, "tcp", HOST, 8091, 1000), undefined);
  assert.equal(await echo(u.out, "tcp", HOST, 8092, 1000), undefined);
}

/** Comments as the previous code wrote them: owner hash, network, interface, container. */
const comment = (id: string): string =>
  nftOwnerComment({ network: NETWORK, containerId: id, ifname: "eth0" });

onUpgradedHost(
  "portmap nftables: the interval-set layout on an upgraded host",
  "lg",
  (ips) =>
    legacyState([
      { comment: comment("old1"), ip: ips[0]!, hostPort: 8090 },
      { comment: comment("old2"), ip: ips[1]!, hostPort: 8091 },
    ]),
  async (u) => {
    assert.equal(await echo(u.out, "tcp", HOST, 8090), v4(OUT));
    await cniOk(u.host, "portmap", "CHECK", u.conf(8090, u.ips[0]), u.call("old1"));
    await cniOk(u.host, "portmap", "CHECK", u.conf(8091, u.ips[1]), u.call("old2"));

    // DEL of an old container that carries nothing (no prevResult, no mappings): found by owner.
    await cniOk(u.host, "portmap", "DEL", u.conf(0), u.call("old1"));
    assert.equal(await echo(u.out, "tcp", HOST, 8090, 1000), undefined);
    assert.doesNotMatch(await u.table(), new RegExp(`${u.ips[0]!.replaceAll(".", "\\.")} \\.`));

    // The first ADD of the new code upgrades the table in place.
    await cniOk(u.host, "portmap", "ADD", u.conf(8092, u.ips[2]), u.call("new1"));
    const upgraded = await u.table();
    assert.doesNotMatch(upgraded, /masq[46]/);
    assert.match(upgraded, /set owners/);
    // The old container: outside, hairpin (masqueraded to the gateway) and localhost still work.
    assert.equal(await echo(u.out, "tcp", HOST, 8091), v4(OUT));
    assert.equal(await echo(u.ctr, "tcp", HOST, 8091), v4(GW));
    assert.equal(await echo(u.host, "tcp", "127.0.0.1", 8091), v4(GW));
    assert.equal(await echo(u.out, "tcp", HOST, 8092), v4(OUT));
    await checkThenDelete(u);
    assert.doesNotMatch(await u.table(), /comment "[0-9a-f]{16}-/, "no element of any container is left");
  },
);

/** The layout with snat verdict maps (portmap_nftables_v2.ts): its table with containers' elements. */
function v2State(owners: Array<{ id: string; ip: string; hostPort: number }>): string {
  const t = `inet ${TABLE}`;
  const sub = `snat4-${sha512Hex("10.77.0.0/24").slice(0, 12)}`;
  const lines = [
    `add chain ${t} ${sub}`,
    `add rule ${t} ${sub} ip saddr 10.77.0.0/24 masquerade`,
    `add rule ${t} ${sub} ip saddr 127.0.0.1 masquerade`,
  ];
  for (const o of owners) {
    const a = { network: NETWORK, containerId: o.id, ifname: "eth0" };
    const comment = nftOwnerComment(a);
    const own = (map: string, key: string[]): string =>
      ownerElement({ kind: "element", map, key }, nftOwnerHash(a)).key.join(" . ");
    lines.push(
      `add element ${t} dnat_any4 { tcp . ${o.hostPort} comment "${comment}" : ${o.ip} . 80 }`,
      `add element ${t} snat4 { ${o.ip} . tcp . 80 comment "${comment}" : jump ${sub} }`,
      `add element ${t} owners { ${own("dnat_any4", ["tcp", String(o.hostPort)])} comment "${comment}", ${own("snat4", [o.ip, "tcp", "80"])} comment "${comment}" }`,
    );
  }
  return layoutText(V2_SKELETON, ...lines);
}

onUpgradedHost(
  "portmap nftables: the layout with snat verdict maps on an upgraded host",
  "v2",
  (ips) =>
    v2State([
      { id: "old1", ip: ips[0]!, hostPort: 8090 },
      { id: "old2", ip: ips[1]!, hostPort: 8091 },
    ]),
  async (u) => {
    assert.equal(await echo(u.out, "tcp", HOST, 8090), v4(OUT));
    assert.equal(await echo(u.ctr, "tcp", HOST, 8091), v4(GW), "hairpin through the old layout");
    await cniOk(u.host, "portmap", "CHECK", u.conf(8090, u.ips[0]), u.call("old1"));
    await cniOk(u.host, "portmap", "CHECK", u.conf(8091, u.ips[1]), u.call("old2"));

    await cniOk(u.host, "portmap", "DEL", u.conf(0), u.call("old1"));
    assert.equal(await echo(u.out, "tcp", HOST, 8090, 1000), undefined);

    await cniOk(u.host, "portmap", "ADD", u.conf(8092, u.ips[2]), u.call("new1"));
    const upgraded = await u.table();
    assert.doesNotMatch(upgraded, /map snat[46] |chain snat_all|chain snat4-|jump snat/);
    assert.match(
      upgraded,
      /map snat_sub4 \{[^}]*10\.77\.0\.3 \. tcp \. 80 comment "[^"]*old2" : "?snat_sub4-/,
    );
    assert.equal(await echo(u.out, "tcp", HOST, 8091), v4(OUT));
    assert.equal(await echo(u.ctr, "tcp", HOST, 8091), v4(GW), "hairpin after the upgrade");
    assert.equal(await echo(u.host, "tcp", "127.0.0.1", 8091), v4(GW));
    assert.equal(await echo(u.ctr, "tcp", HOST, 8092), v4(GW));
    await checkThenDelete(u);
    const left = await u.table();
    assert.doesNotMatch(left, /comment "[0-9a-f]{16}-/, "no element of any container is left");
    assert.doesNotMatch(left, /snat_sub4-/, "the subnet's chain and counter go with its last container");
  },
);

/**
 * The layout before classes of conditions, as that code (a1cc07f) wrote it on this network: old1
 * with conditions its clients never meet (`ip saddr 198.51.100.7`), old2 with conditions the
 * outside meets, as its config spells them (`ip saddr 203.0.113.2/32`, which nft prints without
 * the /32), each with its guard chain and jump elements.
 */
const GUARDS_STATE = layoutText(
  GUARDS_SKELETON,
  String.raw`add counter inet cni_nft_portmap snat_sub4-c78526c433a6 { comment "masquerade to 10.77.0.0/24, named by the snat map" ; }
add chain inet cni_nft_portmap guard4-dbb01f0873a55a6a-38008cded682e9f3
add chain inet cni_nft_portmap guard4-dbb01f0873a55a6a-7265ef569f6825ba
add chain inet cni_nft_portmap snat_sub4-c78526c433a6 { type nat hook postrouting priority 100 ; policy accept ; }
add rule inet cni_nft_portmap guard4-dbb01f0873a55a6a-38008cded682e9f3 ip saddr 203.0.113.2/32 return
add rule inet cni_nft_portmap guard4-dbb01f0873a55a6a-38008cded682e9f3 accept
add rule inet cni_nft_portmap guard4-dbb01f0873a55a6a-7265ef569f6825ba ip saddr 198.51.100.7 return
add rule inet cni_nft_portmap guard4-dbb01f0873a55a6a-7265ef569f6825ba accept
add rule inet cni_nft_portmap snat_sub4-c78526c433a6 ct status dnat ip daddr 10.77.0.0/24 ip saddr 10.77.0.0/24 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add rule inet cni_nft_portmap snat_sub4-c78526c433a6 ct status dnat ip daddr 10.77.0.0/24 ip saddr 127.0.0.1 counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade
add element inet cni_nft_portmap dnat_any4 { tcp . 8090 comment "dbb01f0873a55a6a-7265ef569f6825ba, net: pmlegacy, if: eth0, id: old1" : 10.77.0.2 . 80, tcp . 8091 comment "dbb01f0873a55a6a-38008cded682e9f3, net: pmlegacy, if: eth0, id: old2" : 10.77.0.3 . 80 }
add element inet cni_nft_portmap guard_any4 { tcp . 8090 comment "dbb01f0873a55a6a-7265ef569f6825ba, net: pmlegacy, if: eth0, id: old1" : jump guard4-dbb01f0873a55a6a-7265ef569f6825ba, tcp . 8091 comment "dbb01f0873a55a6a-38008cded682e9f3, net: pmlegacy, if: eth0, id: old2" : jump guard4-dbb01f0873a55a6a-38008cded682e9f3 }
add element inet cni_nft_portmap owners { "4bca77e747788f0" . "139d2106f62872c" comment "dbb01f0873a55a6a-38008cded682e9f3, net: pmlegacy, if: eth0, id: old2", "4bca77e747788f0" . "43221bb4f35044b" comment "dbb01f0873a55a6a-38008cded682e9f3, net: pmlegacy, if: eth0, id: old2", "4bca77e747788f0" . "6b01787bad41873" comment "dbb01f0873a55a6a-38008cded682e9f3, net: pmlegacy, if: eth0, id: old2", "68c221152397a62" . "422d79c9e441e1f" comment "dbb01f0873a55a6a-7265ef569f6825ba, net: pmlegacy, if: eth0, id: old1", "68c221152397a62" . "6f5f0dba0fabf55" comment "dbb01f0873a55a6a-7265ef569f6825ba, net: pmlegacy, if: eth0, id: old1", "68c221152397a62" . "6ff44d767a8aa5e" comment "dbb01f0873a55a6a-7265ef569f6825ba, net: pmlegacy, if: eth0, id: old1" }
add element inet cni_nft_portmap snat_sub4 { 10.77.0.2 . tcp . 80 comment "dbb01f0873a55a6a-7265ef569f6825ba, net: pmlegacy, if: eth0, id: old1" : snat_sub4-c78526c433a6, 10.77.0.3 . tcp . 80 comment "dbb01f0873a55a6a-38008cded682e9f3, net: pmlegacy, if: eth0, id: old2" : snat_sub4-c78526c433a6 }`,
);

onUpgradedHost(
  "portmap nftables: the layout with a guard chain per container with conditions on an upgraded host",
  "gd",
  () => GUARDS_STATE,
  async (u) => {
    const cond = (c: string) => ({ conditionsV4: [`ip saddr ${c}`] });
    const old1 = (hostPort: number): object => ({ ...u.conf(hostPort, u.ips[0]), ...cond("198.51.100.7") });
    // The upgrade names old2's class after nft's text of its conditions, not after the config's.
    const old2 = (hostPort: number): object => ({ ...u.conf(hostPort, u.ips[1]), ...cond(`${OUT}/32`) });
    assert.equal(await echo(u.out, "tcp", HOST, 8090, 1000), undefined, "old1's conditions exclude");
    assert.equal(await echo(u.out, "tcp", HOST, 8091), v4(OUT), "old2's conditions are met");
    await cniOk(u.host, "portmap", "CHECK", old1(8090), u.call("old1"));
    await cniOk(u.host, "portmap", "CHECK", old2(8091), u.call("old2"));
    // old2's record as that code wrote it (its guard key in guard_any4, its guard chain).
    const old2Owner = nftOwnerHash({ network: NETWORK, containerId: "old2", ifname: "eth0" });
    fileRecords("portmap", u.host.path).write(old2Owner, {
      elements: [
        { kind: "element", map: "dnat_any4", key: ["tcp", "8091"] },
        { kind: "element", map: "guard_any4", key: ["tcp", "8091"] },
        { kind: "element", map: "snat_sub4", key: [u.ips[1], "tcp", "80"] },
      ],
      chains: ["guard4-dbb01f0873a55a6a-38008cded682e9f3"],
      shared: ["snat_sub4-c78526c433a6"],
    });

    // The first ADD of the new code turns the guards into classes.
    await cniOk(u.host, "portmap", "ADD", u.conf(8092, u.ips[2]), u.call("new1"));
    const upgraded = await u.table();
    assert.doesNotMatch(upgraded, /guard_(ip|any)[46]|guard4-|jump guard/);
    assert.match(upgraded, /chain cond4-[0-9a-f]{12} \{/);
    assert.equal(await echo(u.out, "tcp", HOST, 8090, 1000), undefined, "still excluded");
    assert.equal(await echo(u.out, "tcp", HOST, 8091), v4(OUT), "still met");
    assert.equal(await echo(u.out, "tcp", HOST, 8092), v4(OUT));
    await cniOk(u.host, "portmap", "CHECK", old1(8090), u.call("old1"));
    await cniOk(u.host, "portmap", "CHECK", old2(8091), u.call("old2"));

    // old2's repeated ADD moves it into its config's class, completely: its element of the
    // class the upgrade named goes in the same run, the class with it (no other user), so the
    // table has one class per conditions again and old2's note of use names the config's.
    const classes = (t: string): string[] =>
      [...t.matchAll(/chain (cond4-[0-9a-f]{12}) \{/g)].map((m) => m[1]!);
    const before = classes(upgraded);
    assert.equal(before.length, 2, upgraded);
    await cniOk(u.host, "portmap", "ADD", old2(8091), u.call("old2"));
    const moved = await u.table();
    const after = classes(moved);
    assert.equal(after.length, 2, moved);
    assert.equal(after.filter((c) => !before.includes(c)).length, 1, "old2's class is its config's");
    assert.equal(
      (moved.match(/tcp \. 8091 comment/g) ?? []).length,
      3,
      "dnat, guarded and one class element",
    );
    const notes = fileRecords("portmap", u.host.path)
      .uses()
      .filter(([name, owner]) => owner === old2Owner && name.startsWith("cond"));
    assert.deepEqual(
      notes.map(([name]) => after.includes(name) && !before.includes(name)),
      [true],
    );
    assert.equal(await echo(u.out, "tcp", HOST, 8091), v4(OUT), "old2's conditions still met");
    assert.equal(await echo(u.out, "tcp", HOST, 8090, 1000), undefined, "old1's still exclude");
    await cniOk(u.host, "portmap", "CHECK", old2(8091), u.call("old2"));

    // DEL with the config's mappings and conditions, and without anything (found by owner).
    await cniOk(u.host, "portmap", "DEL", old1(8090), u.call("old1"));
    await cniOk(u.host, "portmap", "DEL", u.conf(0), u.call("old2"));
    await cniOk(u.host, "portmap", "DEL", u.conf(0), u.call("new1"));
    assert.equal(await echo(u.out, "tcp", HOST, 8091, 1000), undefined);
    const left = await u.table();
    assert.doesNotMatch(left, /comment "[0-9a-f]{16}-/, "no element of any container is left");
    assert.doesNotMatch(left, /cond[46]-|cond_/, "the classes go with their last container");
  },
);
