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

/**
 * Every flavour's key (what `--only` takes: labels contain commas, keys do not), its label and
 * what a run needs to have it.
 */
export const FLAVOUR_KEYS = {
  "upstream-1.1.1": { label: "upstream 1.1.1 (Go, iptables)" },
  ipt: { label: "cni-nft, iptables backends" },
  nft: { label: "cni-nft, nftables backends" },
  "nft-resident": { label: "cni-nft nftables, resident", needs: "the compiled plugins" },
  baseline: { label: "cni-nft nftables, resident, baseline", needs: "--baseline DIR" },
  "ipt-resident": { label: "cni-nft iptables, resident", needs: "the compiled plugins" },
  "nft-command": { label: "cni-nft, nftables, nft command" },
  "upstream-current": { label: "upstream current (Go, nftables)", needs: "--upstream-current DIR" },
} as const satisfies Record<string, { label: string; needs?: string }>;

export type FlavourKey = keyof typeof FLAVOUR_KEYS;

/** The keys and labels as the usage lists them. */
export function flavourKeysUsage(indent: string): string {
  const w = Math.max(...Object.keys(FLAVOUR_KEYS).map((k) => k.length));
  return Object.entries(FLAVOUR_KEYS)
    .map(([k, f]) => {
      const needs = "needs" in f ? `; needs ${f.needs}` : "";
      return `${indent}${k.padEnd(w)}  ${f.label}${needs}`;
    })
    .join("\n");
}

/** `key`'s flavour with its label. */
function flavour(key: FlavourKey, f: Omit<Flavour, "key" | "label">): Flavour {
  return { key, label: FLAVOUR_KEYS[key].label, ...f };
}

export function flavours(dirs: FlavourDirs, store: string): Flavour[] {
  const { ours, upstreamCurrent, baseline } = dirs;
  const all: Flavour[] = [
    flavour("upstream-1.1.1", { bin: UPSTREAM, chain: chainFor(undefined, "", "upstream", store) }),
    flavour("ipt", { bin: ours, chain: chainFor("iptables", "", "oursipt", store) }),
    flavour("nft", { bin: ours, chain: chainFor("nftables", "nftables", "oursnft", store) }),
    // The same plugins as thin clients of a warm resident daemon (docs/resident.md).
    ...(ours.endsWith("compiled")
      ? [
          flavour("nft-resident", {
            bin: ours,
            chain: chainFor("nftables", "nftables", "oursres", store),
            resident: true,
          }),
          ...(baseline
            ? [
                flavour("baseline", {
                  bin: baseline,
                  chain: chainFor("nftables", "nftables", "oursresb", store),
                  resident: true,
                }),
              ]
            : []),
          flavour("ipt-resident", {
            bin: ours,
            chain: chainFor("iptables", "", "oursresi", store),
            resident: true,
          }),
        ]
      : []),
    // The same plugins with libnftables hidden: nft as a command, the compiled plugins' fallback.
    flavour("nft-command", {
      bin: ours,
      chain: chainFor("nftables", "nftables", "oursnftc", store),
      env: { CNI_NFT_LIBNFTABLES: "off" },
    }),
  ];
  // Upstream's firewall has no nftables backend: its own default (iptables) there.
  if (upstreamCurrent)
    all.push(
      flavour("upstream-current", { bin: upstreamCurrent, chain: chainFor("nftables", "", "upcur", store) }),
    );
  return all;
}

/**
 * The flavours `only` names by key (all without it), in the run's order; what is wrong with it
 * otherwise: a name that is no key, or a key whose flavour this run does not have.
 */
export function chooseFlavours(all: readonly Flavour[], only: string | undefined): Flavour[] | string {
  if (only === undefined) return [...all];
  const keys = only.split(",").map((k) => k.trim());
  for (const k of keys) {
    if (!Object.hasOwn(FLAVOUR_KEYS, k))
      return `--only ${JSON.stringify(k)}: not a flavour key (keys: ${Object.keys(FLAVOUR_KEYS).join(", ")})`;
    if (!all.some((f) => f.key === k)) {
      const needs = (FLAVOUR_KEYS[k as FlavourKey] as { needs?: string }).needs;
      return `--only ${k}: not in this run${needs ? ` (it needs ${needs})` : ""}`;
    }
  }
  return all.filter((f) => keys.includes(f.key));
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
