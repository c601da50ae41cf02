/** STATUS for the link plugins: the tools they run are on PATH, and their IPAM is ready. */
import { CniError, ErrorCode, delegateIpam, type CmdArgs } from "../cni/index.js";
import { onPath } from "../iptables/iptables.js";

export function toolsStatus(tools: readonly string[]): void {
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length)
    throw new CniError(
      ErrorCode.PluginNotAvailable,
      `plugin not available: ${missing.join(", ")} not found in PATH`,
    );
}

/** Passes the verb (STATUS or GC) to the IPAM plugin, when there is one. */
export async function ipamStatus(args: CmdArgs<{ ipam?: { type?: string } }>): Promise<void> {
  if (args.config.ipam?.type) await delegateIpam(args);
}

/**
 * GC and STATUS of a link plugin whose only state is its IPAM's (upstream has no GC for them;
 * passing GC on lets host-local free the addresses of containers that are gone).
 */
export function ipamGcAndStatus(tools: readonly string[] = ["ip"]): {
  gc(args: CmdArgs<{ ipam?: { type?: string } }>): Promise<void>;
  status(args: CmdArgs<{ ipam?: { type?: string } }>): Promise<void>;
} {
  return {
    async gc(args) {
      await ipamStatus(args);
    },
    async status(args) {
      toolsStatus(tools);
      await ipamStatus(args);
    },
  };
}
