/** Acting on what backends report as effects, once per plugin call whatever backend produced them. */
import { systemRunner, type Runner } from "../process/index.js";
import type { HostTools } from "./select.js";
import type { Effects } from "./contract.js";

/**
 * As upstream's portmap: drop UDP conntrack entries to the ports, so the next packets see the
 * new mapping instead of following the old entry. Best effort: conntrack may be missing.
 */
export async function settle(
  effects: Effects,
  tools: HostTools,
  families: ReadonlyArray<4 | 6> = [4, 6],
  runner: Runner = systemRunner,
): Promise<void> {
  const ports = [...new Set(effects.udpPorts ?? [])];
  if (ports.length === 0 || !tools.has("conntrack")) return;
  await Promise.all(
    ports.flatMap((p) =>
      families.map((f) =>
        runner
          .run({
            argv: [
              "conntrack",
              "-D",
              "-f",
              f === 4 ? "ipv4" : "ipv6",
              "-p",
              "udp",
              "--orig-port-dst",
              String(p),
            ],
          })
          .catch(() => undefined),
      ),
    ),
  );
}
