/**
 * A ruleset lost in part, on the fakes: after a flush of a table (chains, sets, maps and elements
 * kept, rules gone), of a base chain, or of the iptables tables, CHECK of an attachment names
 * exactly what of the shared skeleton is missing (literal lists), and the next ADD of another
 * attachment repairs it: the host is then what it would be without the loss. The kernel test of
 * the same, with real packets: test/integration/ruleset-loss.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeHost } from "../../../src/hoststate/fake.js";
import { sha512Hex } from "../../../src/cni/attachment.js";
import type { HostStateBackend } from "../../../src/hoststate/index.js";
import type { Interface } from "../../../src/nftables/index.js";
import { masqueradeBackends, MASQ_TABLE, type MasqSpec } from "../../../src/ipmasq/index.js";
import { portmapBackends } from "../../../plugins/meta/portmap/backends.js";
import { NFT_TABLE as PORTMAP_TABLE } from "../../../plugins/meta/portmap/portmap_nftables.js";
import type { PortMapSpec } from "../../../plugins/meta/portmap/config.js";
import { firewallBackends } from "../../../plugins/meta/firewall/backends.js";
import { NFT_TABLE as FIREWALL_TABLE } from "../../../plugins/meta/firewall/firewall_nftables.js";
import type { FirewallSpec } from "../../../plugins/meta/firewall/firewall_backend.js";

const A = { network: "net1", containerId: "ctr1", ifname: "eth0" };
const B = { network: "net1", containerId: "ctr2", ifname: "eth0" };

const portmap = (ip: string, port: number): PortMapSpec => ({
  snat: true,
  masqAll: false,
  markMasqBit: 13,
  conditionsV4: [],
  conditionsV6: [],
  mappings: [{ hostPort: port, containerPort: 80, protocol: "tcp" }],
  containers: [{ family: 4, address: ip, subnet: "10.88.0.0/16" }],
});
const firewall = (ip: string): FirewallSpec => ({
  addresses: [`${ip}/32`],
  adminChain: "CNI-ADMIN",
  zone: "trusted",
  ingressPolicy: "open",
  mark: 0x1000,
});
const masq = (ip: string): MasqSpec => ({ addresses: [`${ip}/16`] });

interface Case<S> {
  what: string;
  backend: (host: FakeHost) => HostStateBackend<S>;
  spec: (ip: string, port: number) => S;
  damage: (host: FakeHost) => Promise<void>;
  /** CHECK of the first attachment after the damage. */
  missing: string[];
  /** The first attachment's own state survives the damage (only shared rules went). */
  keepsOwnState?: boolean;
}

/** `nft flush table`: every rule of every chain goes; chains, sets, maps and elements stay. */
const flushTable = (nft: Interface) => async (): Promise<void> => {
  await nft.run(nft.newTransaction().flush({ kind: "table" }));
};
const flushChain = (nft: Interface, chain: string) => async (): Promise<void> => {
  await nft.run(nft.newTransaction().flush({ kind: "chain", name: chain }));
};

const PM = `table inet ${PORTMAP_TABLE}`;
const SUBNET_HASH = sha512Hex("10.88.0.0/16").slice(0, 12);
const HOSTPORTS_MISSING = [
  "ip daddr . meta l4proto . th dport @guarded_ip4 return",
  "dnat ip to ip daddr . meta l4proto . th dport map @dnat_ip4",
  "meta nfproto ipv4 meta l4proto . th dport @guarded_any4 return",
  "meta nfproto ipv4 dnat ip to meta l4proto . th dport map @dnat_any4",
  "ip6 daddr . meta l4proto . th dport @guarded_ip6 return",
  "dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat_ip6",
  "meta nfproto ipv6 meta l4proto . th dport @guarded_any6 return",
  "meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @dnat_any6",
].map((r) => `rule "${r}" in chain hostports of ${PM}`);
const JUMP = "fib daddr type local jump hostports";
const POSTROUTING_MISSING = ["ip", "ip6"].map(
  (ip) =>
    `rule "ct status dnat ${ip} daddr . meta l4proto . th dport @snat_all${ip === "ip" ? 4 : 6} masquerade" in chain postrouting of ${PM}`,
);

const CASES: Array<Case<unknown>> = [
  {
    what: "portmap nftables: nft flush table inet cni_nft_portmap",
    keepsOwnState: true,
    backend: (h) => portmapBackends(h).find((b) => b.name === "nftables")!,
    spec: portmap,
    damage: (h) => flushTable(h.nft("inet", PORTMAP_TABLE))(),
    missing: [
      ...HOSTPORTS_MISSING,
      `rule "${JUMP}" in chain prerouting of ${PM}`,
      `rule "${JUMP}" in chain output of ${PM}`,
      ...POSTROUTING_MISSING,
      // The subnet's masquerade chain (shared by the subnet's containers: any ADD there repairs it).
      ...["10.88.0.0/16", "127.0.0.1"].map(
        (from) =>
          `rule "ct status dnat ip daddr 10.88.0.0/16 ip saddr ${from} counter name ip daddr . meta l4proto . th dport map @snat_sub4 masquerade" in chain snat_sub4-${SUBNET_HASH} of ${PM}`,
      ),
    ],
  },
  {
    what: "portmap nftables: nft flush chain inet cni_nft_portmap prerouting",
    keepsOwnState: true,
    backend: (h) => portmapBackends(h).find((b) => b.name === "nftables")!,
    spec: portmap,
    damage: (h) => flushChain(h.nft("inet", PORTMAP_TABLE), "prerouting")(),
    missing: [`rule "${JUMP}" in chain prerouting of ${PM}`],
  },
  {
    what: "masquerade nftables: nft flush table inet cni_nft_masquerade",
    keepsOwnState: true,
    backend: (h) => masqueradeBackends(h).find((b) => b.name === "nftables")!,
    spec: masq,
    damage: (h) => flushTable(h.nft("inet", MASQ_TABLE))(),
    missing: [
      // The subnet's base chain is the whole skeleton: the next ADD of the subnet rewrites it.
      `rule "ip saddr 10.88.0.0/16 ip daddr != 10.88.0.0/16 ip daddr != 224.0.0.0/4 counter name ip saddr map @masq4 masquerade" in chain masq4-${SUBNET_HASH} of table inet ${MASQ_TABLE}`,
    ],
  },
  {
    what: "firewall nftables: nft flush table inet cni_nft_firewall",
    keepsOwnState: true,
    backend: (h) => firewallBackends(h).find((b) => b.name === "nftables")!,
    spec: firewall,
    damage: (h) => flushTable(h.nft("inet", FIREWALL_TABLE))(),
    missing: [
      ...[
        "iifname . oifname @isolated_pairs drop",
        "iifname . oifname @bridge_pairs return",
        "iifname @bridges oifname @bridges drop",
      ].map((r) => `rule "${r}" in chain isolation of table inet ${FIREWALL_TABLE}`),
      ...[
        "jump isolation",
        "jump admin",
        "ip daddr @containers4 ct state established,related meta mark set meta mark | 0x00001000 accept",
        "ip saddr @containers4 meta mark set meta mark | 0x00001000 accept",
        "ip6 daddr @containers6 ct state established,related meta mark set meta mark | 0x00001000 accept",
        "ip6 saddr @containers6 meta mark set meta mark | 0x00001000 accept",
      ].map((r) => `rule "${r}" in chain forward of table inet ${FIREWALL_TABLE}`),
    ],
  },
  {
    what: "portmap iptables: iptables -t nat -F",
    backend: (h) => portmapBackends(h).find((b) => b.name === "iptables")!,
    spec: portmap,
    damage: async (h) => {
      const saved = await h.iptables.save(4, "nat");
      await h.iptables.restore(
        4,
        "nat",
        [...saved.chains].map((c) => `-F ${c}`),
      );
    },
    missing: [
      `iptables rule -A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000`,
      "iptables rule -A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE",
      `iptables rule -A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ`,
      "iptables rule -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
      "iptables rule -A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
      // The container's own chain is empty now: only its own ADD fills it again.
      "iptables rule -A CNI-DN-85373d34c6846b6c53ee2 -s 10.88.0.0/16 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK",
      "iptables rule -A CNI-DN-85373d34c6846b6c53ee2 -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK",
      "iptables rule -A CNI-DN-85373d34c6846b6c53ee2 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.88.0.5:80",
      `iptables rule -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"net1\\" id: \\"ctr1\\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2`,
    ],
  },
  {
    what: "firewall iptables: iptables -F",
    backend: (h) => firewallBackends(h).find((b) => b.name === "iptables")!,
    spec: firewall,
    damage: async (h) => {
      const saved = await h.iptables.save(4, "filter");
      await h.iptables.restore(
        4,
        "filter",
        [...saved.chains].map((c) => `-F ${c}`),
      );
    },
    missing: [
      `iptables rule -A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD`,
      `iptables rule -A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN`,
      "iptables rule -A CNI-FORWARD -d 10.88.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
      "iptables rule -A CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT",
    ],
  },
];

for (const c of CASES)
  test(`${c.what}: CHECK names what is missing; the next ADD repairs the skeleton`, async () => {
    const host = new FakeHost();
    const b = c.backend(host);
    await b.setUp(A, c.spec("10.88.0.5", 8080));
    assert.deepEqual(await b.check(A, c.spec("10.88.0.5", 8080)), []);
    await c.damage(host);
    assert.deepEqual(await b.check(A, c.spec("10.88.0.5", 8080)), c.missing);

    // The next ADD (another attachment) repairs the skeleton.
    await b.setUp(B, c.spec("10.88.0.6", 8081));
    assert.deepEqual(await b.check(B, c.spec("10.88.0.6", 8081)), []);
    const whole = new FakeHost();
    const wb = c.backend(whole);
    if (c.keepsOwnState) {
      // Nothing else was lost: the host is an undamaged one with both, the first one whole.
      await wb.setUp(A, c.spec("10.88.0.5", 8080));
      await wb.setUp(B, c.spec("10.88.0.6", 8081));
      assert.deepEqual(await b.check(A, c.spec("10.88.0.5", 8080)), []);
    } else {
      // The first attachment's own rules are its own ADD's to repair: a repeated ADD does. The
      // reference gets them in the same order (rules keep the order they were written in).
      assert.notDeepEqual(await b.check(A, c.spec("10.88.0.5", 8080)), []);
      await b.setUp(A, c.spec("10.88.0.5", 8080));
      assert.deepEqual(await b.check(A, c.spec("10.88.0.5", 8080)), []);
      await wb.setUp(B, c.spec("10.88.0.6", 8081));
      await wb.setUp(A, c.spec("10.88.0.5", 8080));
    }
    assert.equal(await host.dump(), await whole.dump());
  });
