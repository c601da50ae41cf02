/**
 * Which backend: the configured one, else the host's default, as upstream decides it (iptables,
 * unless iptables is missing and nft is there; the firewall plugin prefers firewalld when it
 * runs). DEL and GC use every backend present instead, so a change of backend leaves nothing.
 */
import { onPath } from "../iptables/iptables.js";
import type { BackendName, HostStateBackend } from "./contract.js";

/** What the selector asks of the host; injectable for tests. */
export interface HostTools {
  has(tool: string): boolean;
}

export const systemTools: HostTools = { has: onPath };

/** Upstream's default where nothing is configured. */
export function defaultBackend(tools: HostTools): "iptables" | "nftables" {
  return !tools.has("iptables-restore") && tools.has("nft") ? "nftables" : "iptables";
}

/** The configured backend name, else firewalld when asked for and running, else the host's default. */
export async function chooseBackend(
  configured: BackendName | undefined,
  tools: HostTools,
  opts: { firewalldRunning?: () => Promise<boolean> } = {},
): Promise<BackendName> {
  if (configured) return configured;
  if (opts.firewalldRunning && (await opts.firewalldRunning())) return "firewalld";
  return defaultBackend(tools);
}

/** The backend of that name among a component's backends. */
export function backendNamed<S>(
  backends: readonly HostStateBackend<S>[],
  name: BackendName,
): HostStateBackend<S> {
  const b = backends.find((x) => x.name === name);
  if (!b) throw new Error(`${backends[0]?.component ?? "component"} has no ${name} backend`);
  return b;
}

/** The backends whose tools are on the host. */
export async function presentBackends<S>(
  backends: readonly HostStateBackend<S>[],
): Promise<HostStateBackend<S>[]> {
  const present = await Promise.all(backends.map((b) => Promise.resolve(b.present())));
  return backends.filter((_, i) => present[i]);
}
