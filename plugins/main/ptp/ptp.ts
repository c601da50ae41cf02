/**
 * The ptp plugin: a veth pair per container, routed (not bridged), with upstream's fields and
 * defaults. The verbs every veth plugin shares are in src/vethplugin; the links in ./links.ts.
 */
import * as v from "valibot";
import {
  CniError,
  ErrorCode,
  definePlugin,
  netConf,
  type CmdArgs,
  type Result,
} from "../../../src/cni/index.js";
import { configureContainer } from "../../../src/iproute2/veth.js";
import {
  addAttachment,
  checkAttachment,
  delAttachment,
  enableForwarding,
  gcAttachments,
  setUpHostState,
  requireUsableNetns,
  statusAttachment,
  type VethStateWant,
} from "../../../src/vethplugin/lifecycle.js";
import { ptpContainerPlan, ptpHostPlan, ptpResult } from "./links.js";

const schema = netConf({
  ipMasq: v.optional(v.boolean(), false),
  ipMasqBackend: v.optional(v.picklist(["iptables", "nftables"])),
  mtu: v.optional(v.pipe(v.number(), v.integer(), v.minValue(68), v.maxValue(65535))),
});
export type PtpConf = v.InferOutput<typeof schema>;

const wanted = (c: PtpConf): VethStateWant => ({ ipMasq: c.ipMasq, backend: c.ipMasqBackend, spoof: false });

async function cmdAdd(args: CmdArgs<PtpConf>): Promise<Result> {
  requireUsableNetns(args);
  if (!args.config.ipam?.type)
    throw new CniError(ErrorCode.InvalidNetworkConfig, "ptp needs an ipam section with a type");
  return addAttachment(
    args,
    { ipam: true, hostState: wanted(args.config) },
    async ({ hostVeth, ipam, masqBackend }) => {
      const result = ptpResult(args, ipam);
      const ips = result.ips!;
      enableForwarding(ips);
      const host = ptpHostPlan(args.config, { hostVeth, ifname: args.ifname, netns: args.netns, ips });
      const out = await host.plan.execute();
      const link = await configureContainer(ptpContainerPlan(args.netns, args.ifname, result));
      result.interfaces = [
        { name: hostVeth, mac: out.shown(host.veth)[0]?.address ?? "" },
        { name: args.ifname, mac: link.address ?? "", sandbox: args.netns },
      ];
      await setUpHostState(args, {
        ipMasq: args.config.ipMasq,
        backend: masqBackend,
        addresses: ips.map((i) => i.address),
      });
      return result;
    },
  );
}

export const plugin = definePlugin<PtpConf>(
  {
    add: cmdAdd,
    del: (args) =>
      delAttachment(args, {
        ipam: Boolean(args.config.ipam?.type),
        ipMasq: args.config.ipMasq,
        spoof: false,
      }),
    check: (args) =>
      checkAttachment(args, {
        ipam: true,
        firewall: (prev) => ({
          ipMasq: args.config.ipMasq,
          backend: args.config.ipMasqBackend,
          addresses: (prev.ips ?? []).map((i) => i.address),
        }),
      }),
    status: (args) => statusAttachment(args, wanted(args.config)),
    gc: gcAttachments,
  },
  { name: "ptp", config: schema, netns: "container" },
);
