/** Acting on what backends report as effects, once per plugin call whatever backend produced them. */
import { flushUdpConntrack } from "../conntrack/flush.js";
import { systemRunner, type Runner } from "../process/index.js";
import type { HostTools } from "./select.js";
import type { Effects } from "./contract.js";

/**
 * As upstream's portmap: drop UDP conntrack entries to the ports, so the next packets see the
 * new mapping instead of following the old entry. Best effort: ctnetlink may be refused and the
 * conntrack command missing.
 */
export async function settle(
  effects: Effects,
  tools: HostTools,
  families: ReadonlyArray<4 | 6> = [4, 6],
  runner: Runner = systemRunner,
): Promise<void> {
  const ports = [...new Set(effects.udpPorts ?? [])];
  await flushUdpConntrack(ports, families, { commandPresent: tools.has("conntrack"), runner });
}
