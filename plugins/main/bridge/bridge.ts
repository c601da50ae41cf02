/**
 * The bridge plugin: containers on a Linux bridge, with upstream's config fields and defaults.
 * Order differs from upstream on purpose: everything that can be refused (config, IPAM) is done
 * before any link exists, and host links, container links and firewall each cost one process.
 * The verbs every veth plugin shares are in src/vethplugin; the host plan in ./links.ts.
 */
import { CniError, ErrorCode, definePlugin, type CmdArgs, type Result } from "../../../src/cni/index.js";
import { configureContainer, containerPlan, containerUpPlan } from "../../../src/iproute2/veth.js";
import {
  addAttachment,
  checkAttachment,
  delAttachment,
  enableForwarding,
  gcAttachments,
  setUpHostState,
  statusAttachment,
  type VethStateWant,
} from "../../../src/vethplugin/lifecycle.js";
import { schema, validate, type BridgeConf } from "./config.js";
import {
  bridgeResult,
  hostPlan,
  isGateway,
  reconcileGatewayAddresses,
  setupVlans,
  vlanFiltering,
} from "./links.js";

export type { BridgeConf };

/** What the config asks of the host: masquerade only with IPAM (layer 3), the spoof check. */
const wanted = (c: BridgeConf): VethStateWant => ({
  ipMasq: c.ipMasq && Boolean(c.ipam?.type),
  backend: c.ipMasqBackend,
  spoof: c.macspoofchk,
});

async function cmdAdd(args: CmdArgs<BridgeConf>): Promise<Result> {
  const c = args.config;
  const { mac } = validate(args);
  const layer3 = Boolean(c.ipam?.type);
  return addAttachment(
    args,
    { ipam: layer3, hostState: wanted(c) },
    async ({ hostVeth, ipam, masqBackend }) => {
      const result = bridgeResult(args, ipam);
      const ips = result.ips!;
      const host = hostPlan(c, {
        hostVeth,
        ifname: args.ifname,
        netns: args.netns,
        ips,
        ...(mac ? { mac } : {}),
      });
      const out = await host.plan.execute();
      const br = out.shown(host.bridge)[0];
      if (br?.linkinfo?.info_kind !== "bridge")
        throw new CniError(ErrorCode.Internal, `${c.bridge} exists and is not a bridge`);
      if (isGateway(c)) await reconcileGatewayAddresses(c, host, out, br);
      if (vlanFiltering(c)) await setupVlans(hostVeth, c);
      if (isGateway(c)) enableForwarding(ips);

      // Container side: addresses, up, routes, in one run inside the namespace.
      let containerMac = mac;
      if (!c.disableContainerInterface) {
        const container = ipam
          ? containerPlan(args.netns, args.ifname, result, { nodad: !c.enabledad })
          : containerUpPlan(args.netns, args.ifname);
        containerMac = (await configureContainer(container)).address;
      }

      result.interfaces = [
        { name: c.bridge, mac: br.address ?? "" },
        { name: hostVeth, mac: out.shown(host.veth)[0]?.address ?? "" },
        { name: args.ifname, mac: containerMac ?? "", sandbox: args.netns },
      ];
      await setUpHostState(args, {
        ipMasq: c.ipMasq && layer3,
        backend: masqBackend,
        addresses: ips.map((i) => i.address),
        spoof: c.macspoofchk && containerMac ? { hostVeth, mac: containerMac } : undefined,
      });
      return result;
    },
  );
}

export const plugin = definePlugin<BridgeConf>(
  {
    add: cmdAdd,
    del: (args) =>
      delAttachment(args, {
        ipam: Boolean(args.config.ipam?.type),
        ipMasq: args.config.ipMasq,
        spoof: args.config.macspoofchk,
      }),
    check: (args) =>
      checkAttachment(args, {
        ipam: Boolean(args.config.ipam?.type),
        firewall: (prev) => {
          const containerIf = prev.interfaces?.find((i) => i.sandbox);
          const hostIf = prev.interfaces?.find((i, idx) => idx > 0 && !i.sandbox);
          return {
            ipMasq: args.config.ipMasq && Boolean(args.config.ipam?.type),
            backend: args.config.ipMasqBackend,
            addresses: (prev.ips ?? []).map((i) => i.address),
            spoof:
              args.config.macspoofchk && containerIf?.mac && hostIf
                ? { hostVeth: hostIf.name, mac: containerIf.mac }
                : undefined,
          };
        },
      }),
    status: (args) => statusAttachment(args, wanted(args.config)),
    gc: gcAttachments,
  },
  { name: "bridge", config: schema, netns: "container" },
);
