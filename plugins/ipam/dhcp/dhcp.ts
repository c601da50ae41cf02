/**
 * dhcp IPAM, drop-in for upstream's: the plugin asks the `dhcp daemon` (daemon.ts) on its socket
 * (ipam.daemonSocketPath, default /run/cni/dhcp.sock) for a lease; the daemon keeps renewing it
 * until DEL releases it. ADD returns the address, gateway and routes as upstream builds them.
 * CHECK asks the daemon whether the lease is still held (upstream's CHECK re-allocates); GC
 * releases the network's leases of attachments no longer valid; STATUS reports the daemon
 * reachable (code 50 when not). Upstream has neither GC nor STATUS.
 *
 * The same executable runs the daemon (`dhcp daemon [flags]`) and, inside a container's
 * namespace, the daemon's one-exchange helper (`dhcp exchange`).
 */
import { resolve } from "node:path";
import { definePlugin, type CmdArgs, type Result } from "../../../src/cni/index.js";
import { DEFAULT_SOCKET, dhcpSchema, leaseOptions, type DhcpConf } from "./config.js";
import { call, type CallArgs } from "./rpc.js";

function callArgs(a: CmdArgs<DhcpConf>): CallArgs {
  leaseOptions(a.config, a.args); // option values from CNI_ARGS are checked before the daemon is asked
  return {
    containerId: a.containerId,
    // The daemon may run with another working directory.
    netns: a.netns ? resolve(a.netns) : "",
    ifname: a.ifname,
    args: a.args,
    stdin: a.rawConfig,
  };
}

function socket(a: CmdArgs<DhcpConf>): string {
  return a.config.ipam.daemonSocketPath ?? DEFAULT_SOCKET;
}

export const plugin = definePlugin<DhcpConf>(
  {
    async add(a) {
      const r = (await call(socket(a), "allocate", callArgs(a))) as Result;
      return { ...r, cniVersion: a.cniVersion };
    },
    async del(a) {
      await call(socket(a), "release", callArgs(a));
    },
    async check(a) {
      await call(socket(a), "check", callArgs(a));
    },
    async gc(a) {
      await call(socket(a), "gc", {
        ...callArgs(a),
        validAttachments: a.validAttachments.map((v) => ({ containerID: v.containerId, ifname: v.ifname })),
      });
    },
    async status(a) {
      await call(socket(a), "status", callArgs(a), 30_000);
    },
  },
  { name: "dhcp", config: dhcpSchema },
);

/** `dhcp daemon ...` and the helper `dhcp exchange`; false for a normal plugin call. */
export async function subcommand(argv: string[]): Promise<boolean> {
  if (argv[0] === "daemon") {
    const { runDaemon } = await import("./daemon.js");
    await runDaemon(argv.slice(1));
    return true;
  }
  if (argv[0] === "exchange") {
    const { exchangeMain } = await import("../../../src/dhcp/exchange.js");
    await exchangeMain();
    return true;
  }
  return false;
}
