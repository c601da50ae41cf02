/**
 * The ptp plugin: a veth pair per container, routed (not bridged). The host side carries the
 * gateway address as a /32 (/128) and a host route to the container; the container reaches its
 * subnet through the gateway. Same fields and defaults as upstream's ptp.
 */
import * as v from "valibot";
import {
  CniError,
  attachmentOf,
  ErrorCode,
  definePlugin,
  delegateIpam,
  netConf,
  type CmdArgs,
  type Result,
  requirePrevResult,
} from "../../../src/cni/index.js";
import { ipBatch, IpError } from "../../../src/netlink/ip.js";
import { ensureSysctl } from "../../../src/netlink/sysctl.js";
import {
  asLinks,
  configureContainer,
  deleteContainerLinkIfPresent,
  missingContainerAddresses,
  randomVethName,
  validNetnsPath,
} from "../../../src/netlink/veth.js";
import { routeCommands } from "../../../src/netlink/route.js";
import { addressOf, familyOf, gatewayFor, subnetOf } from "../../../src/address/index.js";
import { systemHost } from "../../../src/hoststate/index.js";
import {
  checkVethState,
  chooseVethBackend,
  gcVethState,
  removeVethState,
  setUpVethState,
  vethStateStatus,
} from "../../../src/link/veth_state.js";
import { chooseFramework } from "../../../src/framework/index.js";

const schema = netConf({
  ipMasq: v.optional(v.boolean(), false),
  ipMasqBackend: v.optional(v.picklist(["iptables", "nftables"])),
  mtu: v.optional(v.pipe(v.number(), v.integer(), v.minValue(68), v.maxValue(65535))),
});
export type PtpConf = v.InferOutput<typeof schema>;

function checkNetns(args: CmdArgs<PtpConf>): void {
  if (args.netns && !validNetnsPath(args.netns))
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `CNI_NETNS ${JSON.stringify(args.netns)} is not a usable path`,
    );
  if (!args.config.ipam?.type)
    throw new CniError(ErrorCode.InvalidNetworkConfig, "ptp needs an ipam section with a type");
}

async function cmdAdd(args: CmdArgs<PtpConf>): Promise<Result> {
  checkNetns(args);
  const c = args.config;
  const masqBackend = chooseVethBackend(c.name, { ipMasq: c.ipMasq, backend: c.ipMasqBackend, spoof: false });
  const ipam = await delegateIpam(args);
  const hostVeth = randomVethName();
  try {
    if (!ipam?.ips?.length) throw new CniError(ErrorCode.Internal, "IPAM plugin returned missing IP config");
    const ips = ipam.ips.map((ip) => ({
      ...ip,
      interface: 1,
      gateway: ip.gateway ?? gatewayFor(ip.address),
    }));
    const result: Result = {
      cniVersion: args.cniVersion,
      ips,
      routes: ipam.routes ?? [],
      dns: ipam.dns ?? {},
    };
    if (c.dns && Object.keys(c.dns).length) result.dns = c.dns;
    for (const ip of ips)
      ensureSysctl(familyOf(ip.address) === 4 ? "net/ipv4/ip_forward" : "net/ipv6/conf/all/forwarding", "1");

    const mtu = c.mtu ? ` mtu ${c.mtu}` : "";
    const host = [
      `link add ${hostVeth}${mtu} type veth peer name ${args.ifname}${mtu} netns ${args.netns}`,
      `link set ${hostVeth} up`,
    ];
    for (const ip of ips) {
      const v6 = familyOf(ip.address) === 6;
      const bits = v6 ? 128 : 32;
      host.push(`addr add ${ip.gateway}/${bits} dev ${hostVeth}${v6 ? " nodad" : ""}`);
      host.push(`route add ${addressOf(ip.address)}/${bits} dev ${hostVeth}`);
    }
    host.push(`link show ${hostVeth}`);
    const hostRes = await ipBatch(host, { json: true });
    const vethShow = asLinks(hostRes.shows.at(-1))[0];

    // Container: address without the subnet route; the subnet and every IPAM route go via the gateway.
    const cmds: string[] = [];
    for (const ip of ips)
      cmds.push(
        `addr add ${ip.address} dev ${args.ifname} noprefixroute${familyOf(ip.address) === 6 ? " nodad" : ""}`,
      );
    cmds.push(`link set ${args.ifname} up`);
    for (const ip of ips) {
      const bits = familyOf(ip.address) === 6 ? 128 : 32;
      const src = addressOf(ip.address);
      cmds.push(`route add ${ip.gateway}/${bits} dev ${args.ifname} scope link src ${src}`);
      cmds.push(`route add ${subnetOf(ip.address)} via ${ip.gateway} dev ${args.ifname} src ${src}`);
    }
    cmds.push(...routeCommands(args.ifname, result.routes ?? [], ips));
    const link = await configureContainer(args.netns, args.ifname, cmds);
    result.interfaces = [
      { name: hostVeth, mac: vethShow?.address ?? "" },
      { name: args.ifname, mac: link.address ?? "", sandbox: args.netns },
    ];
    await setUpVethState(systemHost(), attachmentOf(args), {
      ipMasq: c.ipMasq,
      backend: masqBackend,
      addresses: ips.map((i) => i.address),
    });
    return result;
  } catch (e) {
    await ipBatch([`link del ${hostVeth}`], { force: true }).catch(() => undefined);
    await delegateIpam(args, "DEL").catch(() => undefined);
    throw e instanceof IpError ? new CniError(ErrorCode.Internal, e.message) : e;
  }
}

async function cmdDel(args: CmdArgs<PtpConf>): Promise<void> {
  await deleteContainerLinkIfPresent(args.netns, args.ifname).catch((e: unknown) => {
    throw new CniError(ErrorCode.Internal, (e as Error).message);
  });
  if (args.config.ipam?.type) await delegateIpam(args);
  await removeVethState(systemHost(), attachmentOf(args), { ipMasq: args.config.ipMasq, spoof: false });
}

async function cmdCheck(args: CmdArgs<PtpConf>): Promise<void> {
  const prev = requirePrevResult(args);
  await delegateIpam(args);
  const absent = await missingContainerAddresses(
    args.netns,
    args.ifname,
    (prev.ips ?? []).map((i) => i.address),
  );
  const missing = await checkVethState(systemHost(), attachmentOf(args), {
    ipMasq: args.config.ipMasq,
    backend: chooseFramework(args.config.ipMasqBackend, args.config.name),
    addresses: (prev.ips ?? []).map((i) => i.address),
  });
  missing.unshift(...absent);
  if (missing.length) throw new CniError(ErrorCode.Internal, `missing: ${missing.join("; ")}`);
}

export const plugin = definePlugin<PtpConf>(
  {
    add: cmdAdd,
    del: cmdDel,
    check: cmdCheck,
    async gc(args) {
      if (args.config.ipam?.type) await delegateIpam(args);
      await gcVethState(systemHost(), args.config.name, args.validAttachments);
    },
    async status(args) {
      const c = args.config;
      await vethStateStatus(c.name, { ipMasq: c.ipMasq, backend: c.ipMasqBackend, spoof: false });
      if (args.config.ipam?.type) await delegateIpam(args);
    },
  },
  { name: "ptp", config: schema, netns: "container" },
);
