/**
 * The loopback plugin: `lo` up in the container on ADD, down on DEL; the result names `lo` with
 * its addresses, as upstream's loopback reports them (prevResult unchanged when chained). Under
 * cniVersion 0.1.0/0.2.0 that is `ip4` 127.0.0.1/8 and `ip6` ::1/128: the kernel gives `lo` those
 * whenever it comes up, so the result always has an address.
 */
import { CniError, ErrorCode, definePlugin, type CmdArgs, type Result } from "../../../src/cni/index.js";
import { ipBatch } from "../../../src/iproute2/ip.js";
import { validNetnsPath } from "../../../src/iproute2/veth.js";

function netnsOf(args: CmdArgs): string {
  if (!validNetnsPath(args.netns))
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `CNI_NETNS ${JSON.stringify(args.netns)} is not a usable path`,
    );
  return args.netns;
}

export const plugin = definePlugin(
  {
    async add(args): Promise<Result> {
      const res = await ipBatch(["link set lo up", "addr show dev lo"], { netns: netnsOf(args), json: true });
      // Chained after another plugin, loopback answers with that plugin's result, as upstream's.
      if (args.prevResult) return args.prevResult;
      const info = (
        (res.shows[0] ?? []) as Array<{ addr_info?: Array<{ local: string; prefixlen: number }> }>
      )[0];
      const ips = (info?.addr_info ?? []).map((a) => ({
        interface: 0,
        address: `${a.local}/${a.prefixlen}`,
      }));
      return {
        cniVersion: args.cniVersion,
        interfaces: [{ name: "lo", mac: "00:00:00:00:00:00", sandbox: args.netns }],
        ips,
        dns: {},
      };
    },
    async del(args) {
      if (!args.netns || !validNetnsPath(args.netns)) return;
      // The namespace may be gone already: that is success for DEL.
      await ipBatch(["link set lo down"], { netns: args.netns, force: true }).catch(() => undefined);
    },
    async check(args) {
      const res = await ipBatch(["link show lo"], { netns: netnsOf(args), json: true });
      const lo = ((res.shows[0] ?? []) as Array<{ flags?: string[] }>)[0];
      if (!lo?.flags?.includes("UP")) throw new CniError(ErrorCode.Internal, "lo is down");
    },
  },
  { name: "loopback", netns: "network", answersWithPrevResult: true },
);
