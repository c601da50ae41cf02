/**
 * What one cached attachment keeps on the host, per component (masquerade, spoof check, portmap,
 * firewall), with every backend that can hold it, bound to the attachment: check, set up,
 * remove. Built from what libcni cached (the network config, the final result, capability args),
 * through each plugin's own config parsing, so a component here is what the plugin's ADD made.
 *
 * Backends are named by layout: `iptables` (upstream 1.1.1's rules, also cni-nft's), `nftables`
 * (cni-nft's tables), `upstream-nftables` (upstream's nftables portmap and masquerade, the latter
 * also cni-nft's before its own table: read and removed only, never a target), `firewalld`.
 */
import * as v from "valibot";
import type { CmdArgs, Result } from "../cni/index.js";
import { buildOneConfig, type NetworkConfigList, type RuntimeConf } from "../cli/libcni.js";
import { masqueradeBackends, type MasqSpec, type NftablesMasq } from "../ipmasq/index.js";
import * as upstreamMasq from "../ipmasq/ipmasq_nftables_upstream.js";
import { spoofCheck } from "../link/veth_state.js";
import { systemHost, type HostStateBackend } from "../hoststate/index.js";
import { nftOwnerHash, type Attachment } from "../cni/attachment.js";
import {
  parseConf,
  schema as portmapSchema,
  type PortMapConf,
  type PortMapSpec,
} from "../../plugins/meta/portmap/config.js";
import { portmapBackends } from "../../plugins/meta/portmap/backends.js";
import type { NftablesPortMapper } from "../../plugins/meta/portmap/portmap_nftables.js";
import {
  deleteUpstreamRules,
  missingInUpstreamLayout,
  readUpstreamPortmap,
} from "../../plugins/meta/portmap/portmap_nftables_upstream.js";
import {
  firewallSpec,
  schema as firewallSchema,
  isolationOf,
  type FirewallSpec,
  type HostForward,
  type IsolationSpec,
} from "../../plugins/meta/firewall/firewall_backend.js";
import { firewallBackends, isolationBackends } from "../../plugins/meta/firewall/backends.js";
import type { Framework } from "../framework/index.js";
import type { IptablesPortMapper } from "../../plugins/meta/portmap/portmap_iptables.js";

export type ComponentName = "masquerade" | "spoofcheck" | "portmap" | "firewall" | "isolation";
export type LayoutName = "iptables" | "nftables" | "upstream-nftables" | "firewalld";

/** One backend of a component, bound to one attachment. */
export interface BoundBackend {
  readonly layout: LayoutName;
  /** The framework whose tables hold it (firewalld's zones: none of ours). */
  readonly framework: Framework | "firewalld";
  /** Whether migrate may write it (upstream's nftables portmap is only read and removed). */
  readonly target: boolean;
  /** What is missing; empty when the attachment's state is whole here. */
  check(): Promise<string[]>;
  /** Whether any of the attachment's state is here (whole or partial). */
  holds(): Promise<boolean>;
  setUp(): Promise<void>;
  /** Removes only this layout's state of the attachment, never conntrack entries. */
  remove(): Promise<void>;
}

export interface Component {
  readonly name: ComponentName;
  /** The backend the config names, if it names one. */
  readonly configured?: LayoutName;
  readonly backends: readonly BoundBackend[];
}

/** One attachment as libcni cached it. */
export interface CachedAttachment {
  network: string;
  containerId: string;
  ifname: string;
  netns: string;
  list: NetworkConfigList;
  result: Result;
  capabilityArgs: Record<string, unknown>;
  cniArgs: [string, string][];
  /** The cache file. */
  file: string;
}

function cmdArgs<C>(a: CachedAttachment, config: C, raw: string): CmdArgs<C> {
  return {
    command: "CHECK",
    containerId: a.containerId,
    netns: a.netns,
    ifname: a.ifname,
    args: Object.fromEntries(a.cniArgs),
    path: [],
    config,
    rawConfig: raw,
    cniVersion: a.list.cniVersion,
    prevResult: a.result,
    env: process.env,
  };
}

/** The plugin's config as the runtime passed it on ADD (runtimeConfig from the capability args). */
function pluginConfig(a: CachedAttachment, plugin: Record<string, unknown>): { raw: string; json: unknown } {
  const rt: RuntimeConf = {
    containerId: a.containerId,
    netns: a.netns,
    ifname: a.ifname,
    args: a.cniArgs,
    capabilityArgs: a.capabilityArgs,
    cacheDir: "",
  };
  const raw = buildOneConfig(a.list, plugin, a.result, rt);
  return { raw, json: JSON.parse(raw) as unknown };
}

/** A backend of the contract (src/hoststate), bound to one attachment and its spec. */
function bound<S>(b: HostStateBackend<S>, a: Attachment, spec: S): BoundBackend {
  const layout = b.name;
  return {
    layout,
    framework: layout,
    target: layout !== "firewalld",
    check: () => b.check(a, spec),
    holds: () => b.holds(a, spec),
    setUp: async () => void (await b.setUp(a, spec)),
    remove: async () => void (await b.remove(a, spec)),
  };
}

function masquerade(a: Attachment, s: MasqSpec, configured?: Framework): Component {
  const [ipt, nft] = masqueradeBackends(systemHost()) as [HostStateBackend<MasqSpec>, NftablesMasq];
  return {
    name: "masquerade",
    ...(configured ? { configured } : {}),
    backends: [
      bound(ipt, a, s),
      {
        ...bound(nft, a, s),
        // Only cni-nft's own table: upstream's layout (cni-nft's before) is a source, not the target.
        check: () => nft.checkOwn(a, s),
        holds: () => nft.holdsOwn(a),
        remove: async () => void (await nft.remove(a, s, { ownOnly: true })),
      },
      {
        layout: "upstream-nftables",
        framework: "nftables",
        target: false,
        check: () => upstreamMasq.missingInUpstreamLayout(nft.upstream, a, s.addresses),
        holds: () => upstreamMasq.holdsUpstream(nft.upstream, a),
        setUp: () => Promise.reject(new Error("upstream's nftables masquerade layout is never written")),
        remove: () => upstreamMasq.deleteUpstreamRules(nft.upstream, (c) => c.startsWith(nftOwnerHash(a))),
      },
    ],
  };
}

function spoofcheck(a: Attachment, hostVeth: string, mac: string): Component {
  return {
    name: "spoofcheck",
    configured: "nftables",
    backends: [bound(spoofCheck(systemHost()), a, { hostVeth, mac })],
  };
}

function portmap(a: Attachment, spec: PortMapSpec, configured?: Framework): Component {
  const [ipt, nft] = portmapBackends(systemHost()) as [IptablesPortMapper, NftablesPortMapper];
  const c: PortMapConf = { ...a, ...spec };
  const upstreamRules = () => readUpstreamPortmap(nft.nft, a.containerId);
  return {
    name: "portmap",
    ...(configured ? { configured } : {}),
    backends: [
      bound(ipt, a, spec),
      {
        ...bound(nft, a, spec),
        // Only cni-nft's own table: upstream's layout is a source, not the target.
        check: () => nft.checkOwn(c),
        remove: async () => void (await nft.remove(a, spec, { ownOnly: true })),
      },
      {
        layout: "upstream-nftables",
        framework: "nftables",
        target: false,
        check: async () => missingInUpstreamLayout(c, await upstreamRules()),
        holds: async () => (await upstreamRules()).length > 0,
        setUp: () => Promise.reject(new Error("upstream's nftables portmap layout is never written")),
        remove: async () => deleteUpstreamRules(nft.nft, await upstreamRules()),
      },
    ],
  };
}

function firewall(
  a: Attachment,
  spec: FirewallSpec,
  configured?: LayoutName,
  hostForward?: HostForward,
): Component {
  return {
    name: "firewall",
    ...(configured ? { configured } : {}),
    backends: firewallBackends(systemHost(), hostForward).map((b) => bound(b, a, spec)),
  };
}

/**
 * The bridge's isolation (ingressPolicy same-bridge or isolated), after the firewall: the
 * firewall's set-up on the target writes it there too, so this step removes what the source
 * framework holds of it (upstream never removes its CNI-ISOLATION chains).
 */
function isolation(a: Attachment, spec: IsolationSpec, configured?: LayoutName): Component {
  return {
    name: "isolation",
    ...(configured ? { configured } : {}),
    backends: isolationBackends(systemHost()).map((b) => bound(b, a, spec)),
  };
}

const asFramework = (x: unknown): Framework | undefined =>
  x === "iptables" || x === "nftables" ? x : undefined;

/** The components the attachment's plugins made, in the order of the network's plugins. */
export function componentsOf(a: CachedAttachment): Component[] {
  const out: Component[] = [];
  const attachment: Attachment = { network: a.network, containerId: a.containerId, ifname: a.ifname };
  for (const plugin of a.list.plugins) {
    const type = plugin["type"];
    if (type === "bridge" || type === "ptp") {
      const layer3 = typeof (plugin["ipam"] as { type?: unknown } | undefined)?.type === "string";
      const addresses = (a.result.ips ?? []).map((ip) => ip.address);
      if (plugin["ipMasq"] === true && layer3 && addresses.length)
        out.push(masquerade(attachment, { addresses }, asFramework(plugin["ipMasqBackend"])));
      const ifs = a.result.interfaces ?? [];
      const container = ifs.find((i) => i.name === a.ifname && i.sandbox);
      const hostVeth = type === "bridge" ? ifs[1] : undefined;
      if (plugin["macspoofchk"] === true && container?.mac && hostVeth && !hostVeth.sandbox)
        out.push(spoofcheck(attachment, hostVeth.name, container.mac));
    } else if (type === "portmap") {
      const { raw, json } = pluginConfig(a, plugin);
      const { spec } = parseConf(cmdArgs(a, v.parse(portmapSchema, json), raw));
      if (spec.mappings.length && spec.containers.length)
        out.push(portmap(attachment, spec, asFramework((json as { backend?: unknown }).backend)));
    } else if (type === "firewall") {
      const { raw, json } = pluginConfig(a, plugin);
      const config = v.parse(firewallSchema, json);
      const spec = firewallSpec(cmdArgs(a, config, raw), a.result);
      if (spec.addresses.length === 0) continue;
      const configured = config.backend || undefined;
      out.push(firewall(attachment, spec, configured, config.hostForward));
      const iso = isolationOf(spec);
      // firewalld's isolation is the plugin's own choice of framework; migrate leaves firewalld alone.
      if (iso && configured !== "firewalld") out.push(isolation(attachment, iso, configured));
    }
  }
  return out;
}
