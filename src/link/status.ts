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

export async function ipamStatus(args: CmdArgs<{ ipam?: { type?: string } }>): Promise<void> {
  if (args.config.ipam?.type) await delegateIpam(args);
}
