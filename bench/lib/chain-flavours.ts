/**
 * What bench/chain.ts compares: podman's chain (bridge -> portmap -> firewall -> tuning) per
 * flavour (a build of the plugins and its backends), and the chain of the i-th container of a
 * population already attached to a host.
 */
import type { Conf, Flavour } from "./chain-run.js";

export const UPSTREAM = "/usr/lib/cni";

function chainFor(
  masq: "iptables" | "nftables" | undefined,
  firewall: "" | "nftables",
  name: string,
  store: string,
): Conf[] {
  const b = masq ? { ipMasqBackend: masq } : {};
  const p = masq ? { backend: masq } : {};
  return [
    {
      type: "bridge",
      bridge: `br${name.slice(0, 8)}`,
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ...b,
      ipam: {
        type: "host-local",
        dataDir: store,
        ranges: [[{ subnet: "10.123.0.0/16" }]],
        routes: [{ dst: "0.0.0.0/0" }],
      },
    },
    {
      type: "portmap",
      capabilities: { portMappings: true },
      runtimeConfig: { portMappings: [{ hostPort: 18081, containerPort: 80, protocol: "tcp" }] },
      ...p,
    },
    { type: "firewall", backend: firewall },
    { type: "tuning" },
  ].map((c) => ({ cniVersion: "0.4.0", name, ...c }));
}

/** Where the plugins are: ours (dist/compiled or dist/bin), upstream's current build, a baseline build. */
export interface FlavourDirs {
  ours: string;
  upstreamCurrent?: string;
  baseline?: string;
}

export function flavours(dirs: FlavourDirs, store: string): Flavour[] {
  const { ours, upstreamCurrent, baseline } = dirs;
  const all: Flavour[] = [
    {
      label: "upstream 1.1.1 (Go, iptables)",
      bin: UPSTREAM,
      chain: chainFor(undefined, "", "upstream", store),
    },
    { label: "cni-nft, iptables backends", bin: ours, chain: chainFor("iptables", "", "oursipt", store) },
    {
      label: "cni-nft, nftables backends",
      bin: ours,
      chain: chainFor("nftables", "nftables", "oursnft", store),
    },
    // The same plugins as thin clients of a warm resident daemon (docs/resident.md).
    ...(ours.endsWith("compiled")
      ? [
          {
            label: "cni-nft nftables, resident",
            bin: ours,
            chain: chainFor("nftables", "nftables", "oursres", store),
            resident: true,
          },
          ...(baseline
            ? [
                {
                  label: "cni-nft nftables, resident, baseline",
                  bin: baseline,
                  chain: chainFor("nftables", "nftables", "oursresb", store),
                  resident: true,
                },
              ]
            : []),
          {
            label: "cni-nft iptables, resident",
            bin: ours,
            chain: chainFor("iptables", "", "oursresi", store),
            resident: true,
          },
        ]
      : []),
    // The same plugins with libnftables hidden: nft as a command, the compiled plugins' fallback.
    {
      label: "cni-nft, nftables, nft command",
      bin: ours,
      chain: chainFor("nftables", "nftables", "oursnftc", store),
      env: { CNI_NFT_LIBNFTABLES: "off" },
    },
  ];
  // Upstream's firewall has no nftables backend: its own default (iptables) there.
  if (upstreamCurrent)
    all.push({
      label: "upstream current (Go, nftables)",
      bin: upstreamCurrent,
      chain: chainFor("nftables", "", "upcur", store),
    });
  return all;
}

/** Containers per network of a population: a Linux bridge takes at most 1,024 ports. */
const PER_BRIDGE = 1000;

/**
 * The chain of the population's i-th container: its own host port, and from the 1,000th on a
 * network (bridge, subnet) of its own per thousand. Host state (rules, sets, maps) is shared by
 * every network, so the timed chain still sees all of it.
 */
export function populationMember(f: Flavour, i: number): Flavour {
  const k = Math.floor(i / PER_BRIDGE);
  const chain = f.chain.map((c) => {
    const net = k === 0 ? c : { ...c, name: `${String(c["name"])}${k}` };
    if (c["type"] === "portmap")
      return {
        ...net,
        runtimeConfig: { portMappings: [{ hostPort: 20000 + i, containerPort: 80, protocol: "tcp" }] },
      };
    if (c["type"] === "bridge" && k > 0) {
      const ipam = c["ipam"] as Conf;
      return {
        ...net,
        bridge: `${String(c["bridge"]).slice(0, 12)}${k}`,
        ipam: { ...ipam, ranges: [[{ subnet: `10.${123 + k}.0.0/16` }]] },
      };
    }
    return net;
  });
  return { ...f, chain };
}
