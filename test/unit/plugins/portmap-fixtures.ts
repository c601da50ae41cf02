/**
 * What the portmap tests share: the attachments and specs of the unit tests, a fake host with
 * them ADDed or with an earlier layout's table loaded, and the text of the earlier layouts'
 * tables (the kernel tests of upgrades, test/integration/portmap-legacy.test.ts, load them too).
 */
import type { PortMapSpec } from "../../../plugins/meta/portmap/config.js";
import type { Attachment } from "../../../src/cni/attachment.js";
import { FakeHost } from "../../../src/hoststate/fake.js";
import type { HostStateBackend } from "../../../src/hoststate/index.js";
import { portmapBackends, type NftablesPortMapper } from "../../../plugins/meta/portmap/backends.js";
import { NFT_TABLE } from "../../../plugins/meta/portmap/portmap_nftables.js";

export type Name = "iptables" | "nftables";
export const A = { network: "net1", containerId: "ctr1", ifname: "eth0" };
export const B = { network: "net1", containerId: "ctr2", ifname: "eth0" };
/** Another network: a GC of net1 never touches it. */
export const C = { network: "net2", containerId: "ctr3", ifname: "eth0" };
export const BASE: PortMapSpec = {
  snat: true,
  masqAll: false,
  markMasqBit: 13,
  conditionsV4: [],
  conditionsV6: [],
  mappings: [],
  containers: [],
};
/** Dual stack, tcp and udp, any host address. */
export const SPEC_A: PortMapSpec = {
  ...BASE,
  mappings: [
    { hostPort: 8080, containerPort: 80, protocol: "tcp" },
    { hostPort: 5353, containerPort: 53, protocol: "udp" },
  ],
  containers: [
    { family: 4, address: "10.88.0.5", subnet: "10.88.0.0/24" },
    { family: 6, address: "fd00::5", subnet: "fd00::/64" },
  ],
};
/** A hostIP and conditions (in each backend's syntax). */
export const specB = (name: Name): PortMapSpec => ({
  ...BASE,
  conditionsV4: name === "iptables" ? ["-s", "192.168.0.0/16"] : ["ip saddr 192.168.0.0/16"],
  mappings: [{ hostPort: 9090, containerPort: 90, protocol: "tcp", hostIP: "192.168.1.1", hostFamily: 4 }],
  containers: [{ family: 4, address: "10.88.0.6", subnet: "10.88.0.0/24" }],
});
export const SPEC_C: PortMapSpec = {
  ...BASE,
  mappings: [{ hostPort: 7070, containerPort: 70, protocol: "tcp" }],
  containers: [{ family: 4, address: "10.99.0.7", subnet: "10.99.0.0/16" }],
};

/** B's spec on the nftables backend. */
export const SPEC_B = specB("nftables");
/** Every attachment above with its nftables spec: what each layout's golden table holds. */
export const ATTACHED: ReadonlyArray<readonly [Attachment, PortMapSpec]> = [
  [A, SPEC_A],
  [B, SPEC_B],
  [C, SPEC_C],
];

/** A fake host with A, B and C ADDed by backend `name`, and that backend. */
export async function threeAttached(name: Name): Promise<[FakeHost, HostStateBackend<PortMapSpec>]> {
  const host = new FakeHost();
  const b = portmapBackends(host).find((x) => x.name === name)!;
  await b.setUp(A, SPEC_A);
  await b.setUp(B, specB(name));
  await b.setUp(C, SPEC_C);
  return [host, b];
}

/** The current nftables layout after ADD of A, B and C: what an upgrade must end in. */
export async function currentDump(): Promise<string> {
  return (await threeAttached("nftables"))[0].dump();
}

/** A fake host whose portmap table is `table` (an earlier layout's), and its nftables backend. */
export function loadedHost(table: string): [FakeHost, NftablesPortMapper] {
  const host = new FakeHost();
  host.nft("inet", NFT_TABLE).load(table);
  return [host, portmapBackends(host).find((x) => x.name === "nftables") as NftablesPortMapper];
}

const RANK: Record<string, number> = { table: 0, counter: 1, chain: 2, map: 3, set: 3, rule: 4, element: 5 };

/**
 * The statements of `parts` in the order a dump lists their kinds (table, counters, chains, sets
 * and maps, rules, elements; each kind in the order given), so that each names only what comes
 * before it: what the fake's load() and `nft -f` take.
 */
export function layoutText(...parts: string[]): string {
  const lines = parts.flatMap((p) => p.split("\n")).filter((l) => l.trim() !== "");
  const rank = (l: string): number => RANK[/^add (\w+)/.exec(l)?.[1] ?? ""] ?? 9;
  return lines.sort((x, y) => rank(x) - rank(y)).join("\n") + "\n";
}

/** The DNAT half every layout before classes of conditions declared, whatever its containers. */
const BEFORE_CLASSES = String.raw`add table inet cni_nft_portmap { comment "CNI portmap (cni-nft): host ports to containers, state in maps" ; }
add chain inet cni_nft_portmap hostports
add chain inet cni_nft_portmap output { type nat hook output priority -100 ; policy accept ; }
add chain inet cni_nft_portmap postrouting { type nat hook postrouting priority 100 ; policy accept ; }
add chain inet cni_nft_portmap prerouting { type nat hook prerouting priority -100 ; policy accept ; }
add map inet cni_nft_portmap dnat_any4 { type inet_proto . inet_service : ipv4_addr . inet_service ; }
add map inet cni_nft_portmap dnat_any6 { type inet_proto . inet_service : ipv6_addr . inet_service ; }
add map inet cni_nft_portmap dnat_ip4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service ; }
add map inet cni_nft_portmap dnat_ip6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service ; }
add map inet cni_nft_portmap guard_any4 { type inet_proto . inet_service : verdict ; }
add map inet cni_nft_portmap guard_any6 { type inet_proto . inet_service : verdict ; }
add map inet cni_nft_portmap guard_ip4 { type ipv4_addr . inet_proto . inet_service : verdict ; }
add map inet cni_nft_portmap guard_ip6 { type ipv6_addr . inet_proto . inet_service : verdict ; }
add rule inet cni_nft_portmap hostports ip daddr . meta l4proto . th dport vmap @guard_ip4
add rule inet cni_nft_portmap hostports dnat ip to ip daddr . meta l4proto . th dport map @dnat_ip4
add rule inet cni_nft_portmap hostports meta nfproto ipv4 meta l4proto . th dport vmap @guard_any4
add rule inet cni_nft_portmap hostports meta nfproto ipv4 dnat ip to meta l4proto . th dport map @dnat_any4
add rule inet cni_nft_portmap hostports ip6 daddr . meta l4proto . th dport vmap @guard_ip6
add rule inet cni_nft_portmap hostports dnat ip6 to ip6 daddr . meta l4proto . th dport map @dnat_ip6
add rule inet cni_nft_portmap hostports meta nfproto ipv6 meta l4proto . th dport vmap @guard_any6
add rule inet cni_nft_portmap hostports meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @dnat_any6
add rule inet cni_nft_portmap output fib daddr type local jump hostports
add rule inet cni_nft_portmap prerouting fib daddr type local jump hostports
`;

const OWNERS = String.raw`add set inet cni_nft_portmap owners { type ifname . ifname ; comment "owner tag . element tag, one per element (comment: owner)" ; }`;

/** The interval-set layout's table without containers (portmap_nftables_legacy.ts). */
export const LEGACY_SKELETON = layoutText(
  BEFORE_CLASSES,
  String.raw`add set inet cni_nft_portmap masq4 { type ipv4_addr . ipv4_addr . inet_proto . inet_service ; flags interval ; }
add set inet cni_nft_portmap masq6 { type ipv6_addr . ipv6_addr . inet_proto . inet_service ; flags interval ; }
add rule inet cni_nft_portmap postrouting ct status dnat ip saddr . ip daddr . meta l4proto . th dport @masq4 masquerade
add rule inet cni_nft_portmap postrouting ct status dnat ip6 saddr . ip6 daddr . meta l4proto . th dport @masq6 masquerade`,
);

/** The snat verdict maps' layout's table without containers (portmap_nftables_v2.ts). */
export const V2_SKELETON = layoutText(
  BEFORE_CLASSES,
  OWNERS,
  String.raw`add chain inet cni_nft_portmap snat_all
add map inet cni_nft_portmap snat4 { type ipv4_addr . inet_proto . inet_service : verdict ; }
add map inet cni_nft_portmap snat6 { type ipv6_addr . inet_proto . inet_service : verdict ; }
add rule inet cni_nft_portmap postrouting ct status dnat ip daddr . meta l4proto . th dport vmap @snat4
add rule inet cni_nft_portmap postrouting ct status dnat ip6 daddr . meta l4proto . th dport vmap @snat6
add rule inet cni_nft_portmap snat_all masquerade`,
);

/** The guard chains' layout's table without containers (portmap_nftables_guards.ts). */
export const GUARDS_SKELETON = layoutText(
  BEFORE_CLASSES,
  OWNERS,
  String.raw`add set inet cni_nft_portmap snat_all4 { type ipv4_addr . inet_proto . inet_service ; }
add set inet cni_nft_portmap snat_all6 { type ipv6_addr . inet_proto . inet_service ; }
add map inet cni_nft_portmap snat_sub4 { type ipv4_addr . inet_proto . inet_service : counter ; }
add map inet cni_nft_portmap snat_sub6 { type ipv6_addr . inet_proto . inet_service : counter ; }
add rule inet cni_nft_portmap postrouting ct status dnat ip daddr . meta l4proto . th dport @snat_all4 masquerade
add rule inet cni_nft_portmap postrouting ct status dnat ip6 daddr . meta l4proto . th dport @snat_all6 masquerade`,
);
