/**
 * The bridge plugin: containers on a Linux bridge, with upstream's config fields and defaults.
 * Order differs from upstream on purpose: everything that can be refused (config, IPAM) is done
 * before any link exists, and host links, container links and firewall each cost one process.
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
import { ipBatch, IpError, failUnlessExists } from "../../../src/netlink/ip.js";
import { ensureSysctl } from "../../../src/netlink/sysctl.js";
import {
  asLinks,
  type LinkShow,
  configureContainer,
  containerConfigCommands,
  deleteContainerLinkIfPresent,
  missingContainerAddresses,
  randomVethName,
  validNetnsPath,
} from "../../../src/netlink/veth.js";
import { validateIfname } from "../../../src/nftables/index.js";
import { systemRunner } from "../../../src/process/index.js";
import {
  defaultRoute,
  familyOf,
  gatewayFor,
  parseMac,
  subnetOf,
  unicastMacProblem,
} from "../../../src/address/index.js";
import { systemHost } from "../../../src/hoststate/index.js";
import { chooseFramework } from "../../../src/framework/index.js";
import {
  checkVethState,
  chooseVethBackend,
  gcVethState,
  removeVethState,
  setUpVethState,
  vethStateStatus,
} from "../../../src/link/veth_state.js";

const vlanId = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(4094));
const schema = netConf({
  bridge: v.optional(v.string(), "cni0"),
  isGateway: v.optional(v.boolean(), false),
  isDefaultGateway: v.optional(v.boolean(), false),
  forceAddress: v.optional(v.boolean(), false),
  ipMasq: v.optional(v.boolean(), false),
  ipMasqBackend: v.optional(v.picklist(["iptables", "nftables"])),
  mtu: v.optional(v.pipe(v.number(), v.integer(), v.minValue(68), v.maxValue(65535))),
  hairpinMode: v.optional(v.boolean(), false),
  promiscMode: v.optional(v.boolean(), false),
  vlan: v.optional(vlanId, 0),
  vlanTrunk: v.optional(
    v.array(v.looseObject({ id: v.optional(vlanId), minID: v.optional(vlanId), maxID: v.optional(vlanId) })),
  ),
  preserveDefaultVlan: v.optional(v.boolean(), true),
  enabledad: v.optional(v.boolean(), false),
  macspoofchk: v.optional(v.boolean(), false),
  disableContainerInterface: v.optional(v.boolean(), false),
  portIsolation: v.optional(v.boolean(), false),
  mac: v.optional(v.string()),
});
export type BridgeConf = v.InferOutput<typeof schema>;

/** Checks that need more than the schema; all before anything changes on the host. */
function validate(args: CmdArgs<BridgeConf>): { mac?: string } {
  const c = args.config;
  const fail = (msg: string): never => {
    throw new CniError(ErrorCode.InvalidNetworkConfig, msg);
  };
  try {
    validateIfname("bridge", c.bridge);
  } catch (e) {
    fail(`invalid bridge name: ${(e as Error).message}`);
  }
  if (c.hairpinMode && c.promiscMode) fail("cannot set hairpin mode and promiscuous mode at the same time");
  if (c.ipam?.type && c.disableContainerInterface)
    fail("cannot use IPAM when disableContainerInterface is set");
  if (args.netns && !validNetnsPath(args.netns))
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `CNI_NETNS ${JSON.stringify(args.netns)} is not a usable path`,
    );
  const mac = c.runtimeConfig?.mac ?? args.args["MAC"] ?? c.mac;
  if (mac === undefined) return {};
  const problem = unicastMacProblem(mac);
  if (problem)
    fail(`MAC address ${JSON.stringify(mac)} ${problem}: give a unicast address such as 0a:58:0a:00:00:02`);
  return { mac: parseMac(mac)! };
}

async function cmdAdd(args: CmdArgs<BridgeConf>): Promise<Result> {
  const c = args.config;
  const { mac } = validate(args);
  const isGw = c.isGateway || c.isDefaultGateway;
  const layer3 = Boolean(c.ipam?.type);
  const masqBackend = chooseVethBackend(c.name, {
    ipMasq: c.ipMasq && layer3,
    backend: c.ipMasqBackend,
    spoof: c.macspoofchk,
  });
  const ipam = layer3 ? await delegateIpam(args) : undefined;
  const hostVeth = randomVethName();
  try {
    const result: Result = {
      cniVersion: args.cniVersion,
      interfaces: [],
      ips: [],
      routes: [...(ipam?.routes ?? [])],
    };
    result.dns = c.dns && Object.keys(c.dns).length ? c.dns : (ipam?.dns ?? {});
    if (layer3 && !ipam?.ips?.length)
      throw new CniError(ErrorCode.Internal, "IPAM plugin returned missing IP config");
    for (const ip of ipam?.ips ?? []) {
      const gateway = ip.gateway ?? (isGw ? gatewayFor(ip.address) : undefined);
      result.ips!.push({ ...ip, interface: 2, ...(gateway ? { gateway } : {}) });
    }
    if (c.isDefaultGateway)
      for (const fam of [4, 6] as const) {
        const ip = result.ips!.find((i) => familyOf(i.address) === fam);
        if (!ip?.gateway) continue;
        const dflt = defaultRoute(fam);
        if (!result.routes!.some((r) => r.dst === dflt && r.gw))
          result.routes!.push({ dst: dflt, gw: ip.gateway });
      }

    // Host side: bridge, gateway addresses, the veth pair with its peer born in the container.
    const vlanFiltering = c.vlan !== 0 || c.vlanTrunk !== undefined;
    const mtu = c.mtu ? ` mtu ${c.mtu}` : "";
    const host: string[] = [
      `link add name ${c.bridge}${mtu} type bridge${vlanFiltering ? " vlan_filtering 1" : ""}`,
      `link set ${c.bridge} up${c.promiscMode ? " promisc on" : ""}`,
    ];
    const okIfExists = new Set([1]);
    if (isGw)
      for (const ip of result.ips!) {
        const len = ip.address.split("/")[1];
        host.push(`addr add ${ip.gateway}/${len} dev ${c.bridge}`);
        okIfExists.add(host.length);
      }
    host.push(
      `link add ${hostVeth}${mtu} type veth peer name ${args.ifname}${mtu}${mac ? ` address ${mac}` : ""} netns ${args.netns}`,
      `link set ${hostVeth} master ${c.bridge} up`,
      `link set ${hostVeth} type bridge_slave hairpin ${c.hairpinMode ? "on" : "off"}${c.portIsolation ? " isolated on" : ""}`,
      // The batch's only `addr show` (iproute2 prints addresses for the first one only).
      `addr show dev ${c.bridge}`,
      `link show ${hostVeth}`,
    );
    const hostRes = await ipBatch(host, { force: true, json: true, details: true });
    failUnlessExists(hostRes, okIfExists);
    const [brShow, vethShow] = hostRes.shows.slice(-2).map((s) => asLinks(s)[0]);
    if (brShow?.linkinfo?.info_kind !== "bridge")
      throw new CniError(ErrorCode.Internal, `${c.bridge} exists and is not a bridge`);
    if (isGw)
      await reconcileGatewayAddresses(
        c,
        result.ips!,
        brShow,
        hostRes.errors.map((e) => e.line),
        host,
      );
    if (vlanFiltering) await setupVlans(hostVeth, c);
    if (isGw)
      for (const ip of result.ips!)
        ensureSysctl(
          familyOf(ip.address) === 4 ? "net/ipv4/ip_forward" : "net/ipv6/conf/all/forwarding",
          "1",
        );

    // Container side: addresses, up, routes, in one run inside the namespace.
    let containerMac = mac;
    if (!c.disableContainerInterface) {
      const cmds = ipam
        ? containerConfigCommands(args.ifname, result, { nodad: !c.enabledad })
        : [`link set ${args.ifname} up`];
      const link = await configureContainer(args.netns, args.ifname, cmds);
      containerMac = link.address;
    }

    result.interfaces = [
      { name: c.bridge, mac: brShow.address ?? "" },
      { name: hostVeth, mac: vethShow?.address ?? "" },
      { name: args.ifname, mac: containerMac ?? "", sandbox: args.netns },
    ];
    await setUpVethState(systemHost(), attachmentOf(args), {
      ipMasq: c.ipMasq && layer3,
      backend: masqBackend,
      addresses: result.ips!.map((i) => i.address),
      spoof: c.macspoofchk && containerMac ? { hostVeth, mac: containerMac } : undefined,
    });
    return result;
  } catch (e) {
    await rollback(args, hostVeth, layer3);
    throw asCniError(e);
  }
}

/**
 * As upstream's ensureAddr: another address of the gateway's subnet on the bridge is an error,
 * unless forceAddress, which replaces it. Checked after the batch (one process for the common
 * case); on error the gateway address this ADD added is taken off again.
 */
async function reconcileGatewayAddresses(
  c: BridgeConf,
  ips: Array<{ address: string; gateway?: string }>,
  br: LinkShow,
  failedLines: number[],
  host: string[],
): Promise<void> {
  const others: string[] = [];
  for (const ip of ips) {
    const subnet = subnetOf(ip.address);
    for (const a of br.addr_info ?? []) {
      const cidr = `${a.local}/${a.prefixlen}`;
      if (
        a.local !== ip.gateway &&
        a.scope !== "link" &&
        familyOf(cidr) === familyOf(subnet) &&
        subnetOf(cidr) === subnet
      )
        others.push(cidr);
    }
  }
  if (others.length === 0) return;
  if (c.forceAddress) {
    // Deleting a primary address takes its secondaries (our gateway) along: add them back.
    const readd = host.filter((cmd) => cmd.startsWith("addr add "));
    const res = await ipBatch([...others.map((o) => `addr del ${o} dev ${c.bridge}`), ...readd], {
      force: true,
    });
    failUnlessExists(res, new Set(readd.map((_, i) => others.length + i + 1)));
    return;
  }
  const added = host
    .map((cmd, i) => ({ cmd, line: i + 1 }))
    .filter((l) => l.cmd.startsWith("addr add ") && !failedLines.includes(l.line))
    .map((l) => l.cmd.replace(/^addr add /, "addr del "));
  if (added.length) await ipBatch(added, { force: true });
  throw new CniError(
    ErrorCode.Internal,
    `${c.bridge} already has an IP address different from the gateway (${others.join(", ")}); set forceAddress to replace it`,
  );
}

async function setupVlans(hostVeth: string, c: BridgeConf): Promise<void> {
  const cmds: string[] = [];
  if (!c.preserveDefaultVlan) cmds.push(`vlan del vid 1 dev ${hostVeth}`);
  if (c.vlan) cmds.push(`vlan add vid ${c.vlan} dev ${hostVeth} pvid untagged`);
  for (const t of c.vlanTrunk ?? []) {
    if (t.id !== undefined) cmds.push(`vlan add vid ${t.id} dev ${hostVeth}`);
    else if (t.minID !== undefined && t.maxID !== undefined)
      cmds.push(`vlan add vid ${t.minID}-${t.maxID} dev ${hostVeth}`);
  }
  const res = await systemRunner.run({ argv: ["bridge", "-batch", "-"], stdin: cmds.join("\n") + "\n" });
  if (res.code !== 0)
    throw new CniError(ErrorCode.Internal, `setting VLANs on ${hostVeth}: ${res.stderr.trim()}`);
}

/** Undo a failed ADD: the veth (with its container peer) and the IP reservation. */
async function rollback(args: CmdArgs<BridgeConf>, hostVeth: string, layer3: boolean): Promise<void> {
  await ipBatch([`link del ${hostVeth}`], { force: true }).catch(() => undefined);
  if (layer3) await delegateIpam(args, "DEL").catch(() => undefined);
}

function asCniError(e: unknown): unknown {
  if (e instanceof IpError) return new CniError(ErrorCode.Internal, e.message);
  return e;
}

async function cmdDel(args: CmdArgs<BridgeConf>): Promise<void> {
  const c = args.config;
  await deleteContainerLinkIfPresent(args.netns, args.ifname).catch((e: unknown) => {
    throw new CniError(ErrorCode.Internal, (e as Error).message);
  });
  if (c.ipam?.type) await delegateIpam(args);
  // Upstream skips masquerade teardown when the namespace is gone and leaks the rules; we do not.
  await removeVethState(systemHost(), attachmentOf(args), { ipMasq: c.ipMasq, spoof: c.macspoofchk });
}

async function cmdCheck(args: CmdArgs<BridgeConf>): Promise<void> {
  const c = args.config;
  const prev = requirePrevResult(args);
  if (c.ipam?.type) await delegateIpam(args);
  const absent = await missingContainerAddresses(
    args.netns,
    args.ifname,
    (prev.ips ?? []).map((i) => i.address),
  );
  const containerIf = prev.interfaces?.find((i) => i.sandbox);
  const hostIf = prev.interfaces?.find((i, idx) => idx > 0 && !i.sandbox);
  const missing = await checkVethState(systemHost(), attachmentOf(args), {
    ipMasq: c.ipMasq && Boolean(c.ipam?.type),
    backend: chooseFramework(c.ipMasqBackend, c.name),
    addresses: (prev.ips ?? []).map((i) => i.address),
    spoof:
      c.macspoofchk && containerIf?.mac && hostIf
        ? { hostVeth: hostIf.name, mac: containerIf.mac }
        : undefined,
  });
  missing.unshift(...absent);
  if (missing.length) throw new CniError(ErrorCode.Internal, `missing: ${missing.join("; ")}`);
}

async function cmdStatus(args: CmdArgs<BridgeConf>): Promise<void> {
  const c = args.config;
  await vethStateStatus(c.name, {
    ipMasq: c.ipMasq && Boolean(c.ipam?.type),
    backend: c.ipMasqBackend,
    spoof: c.macspoofchk,
  });
  if (c.ipam?.type) await delegateIpam(args);
}

export const plugin = definePlugin<BridgeConf>(
  {
    add: cmdAdd,
    del: cmdDel,
    check: cmdCheck,
    status: cmdStatus,
    async gc(args) {
      if (args.config.ipam?.type) await delegateIpam(args);
      await gcVethState(systemHost(), args.config.name, args.validAttachments);
    },
  },
  { name: "bridge", config: schema, netns: "container" },
);
