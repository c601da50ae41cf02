/**
 * The host-device plugin: moves an existing host interface into the container (renamed to
 * CNI_IFNAME, its host name kept as the link's alias) and back to the host under its old name on
 * DEL. Upstream's fields: `device`, `hwaddr`, `kernelpath`, `pciBusID`, runtimeConfig `deviceID`,
 * optional `ipam`. See docs/host-device.md.
 */
import * as v from "valibot";
import {
  CniError,
  ErrorCode,
  configError,
  definePlugin,
  delegateIpam,
  netConf,
  requireResultAddress,
  validateIfname,
  type CmdArgs,
  type Result,
} from "../../../src/cni/index.js";
import { classifyMessage } from "../../../src/process/index.js";
import { parseMac } from "../../../src/address/index.js";
import { ipBatch } from "../../../src/iproute2/ip.js";
import { attachLink, checkContainerLink, checkNetns, showLink } from "../../../src/link/attach.js";
import { ipamGcAndStatus } from "../../../src/link/status.js";
import { applyDeviceId, deviceFromSysfs, isDpdk, type DeviceSelector } from "./lookup.js";

const PCI = /^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$/;
const schema = netConf({
  device: v.optional(v.string(), ""),
  hwaddr: v.optional(
    v.pipe(
      v.string(),
      v.check((s) => s === "" || parseMac(s) !== undefined, "must be a MAC address"),
    ),
    "",
  ),
  kernelpath: v.optional(
    v.pipe(
      v.string(),
      v.check(
        (s) =>
          s === "" || (s.startsWith("/sys/devices/") && !s.split("/").includes("..") && !/[\0\n]/.test(s)),
        "kernel device path must be absolute and begin with /sys/devices/",
      ),
    ),
    "",
  ),
  pciBusID: v.optional(
    v.pipe(
      v.string(),
      v.check((s) => s === "" || PCI.test(s), "must be a PCI address such as 0000:00:03.0"),
    ),
    "",
  ),
  runtimeConfig: v.optional(
    v.looseObject({
      deviceID: v.optional(
        v.pipe(v.string(), v.regex(/^[A-Za-z0-9:._-]*$/, "must be a PCI or auxiliary device name")),
      ),
    }),
  ),
});
export type HostDeviceConf = v.InferOutput<typeof schema>;

interface Loaded {
  sel: DeviceSelector;
  dpdk: boolean;
}

function load(c: HostDeviceConf): Loaded {
  if (c.device) validateName("device", c.device);
  const sel = applyDeviceId(
    {
      ...(c.device ? { device: c.device } : {}),
      ...(c.hwaddr ? { hwaddr: parseMac(c.hwaddr)! } : {}),
      ...(c.kernelpath ? { kernelpath: c.kernelpath } : {}),
      ...(c.pciBusID ? { pciBusID: c.pciBusID } : {}),
    },
    c.runtimeConfig?.deviceID,
  );
  if (!sel.device && !sel.hwaddr && !sel.kernelpath && !sel.pciBusID && !sel.auxDevice)
    throw configError(`specify either "device", "hwaddr", "kernelpath" or "pciBusID"`);
  return { sel, dpdk: sel.pciBusID ? isDpdk(sel.pciBusID) : false };
}

function validateName(field: string, name: string): void {
  try {
    validateIfname(name);
  } catch (e) {
    throw configError(`${field}: ${(e as Error).message}`);
  }
}

/** The host device's current name. */
async function hostDeviceName(sel: DeviceSelector): Promise<string> {
  const fromSys = deviceFromSysfs(sel);
  if (fromSys) {
    validateName("device found in sysfs", fromSys);
    return fromSys;
  }
  if (sel.device) return sel.device;
  const links = ((await ipBatch(["link show"], { json: true })).shows[0] ?? []) as Array<{
    ifname: string;
    address?: string;
  }>;
  const found = links.find((l) => l.address?.toLowerCase() === sel.hwaddr);
  if (!found)
    throw new CniError(ErrorCode.Internal, "failed to find host device: failed to find physical interface");
  return found.ifname;
}

async function cmdAdd(args: CmdArgs<HostDeviceConf>): Promise<Result> {
  const { sel, dpdk } = load(args.config);
  checkNetns(args.netns);
  requireResultAddress(args.cniVersion, Boolean(args.config.ipam?.type), "ipam");
  if (dpdk) {
    // Nothing moves: the device belongs to a userspace driver; IPAM still runs.
    const result: Result = {
      cniVersion: args.cniVersion,
      interfaces: [{ name: args.ifname, sandbox: args.netns }],
    };
    if (args.config.ipam?.type) {
      const ipam = await delegateIpam(args, "ADD");
      if (!ipam?.ips?.length)
        throw new CniError(ErrorCode.Internal, "IPAM plugin returned missing IP config");
      result.ips = ipam.ips.map((ip) => ({ ...ip, interface: 0 }));
      result.routes = ipam.routes ?? [];
    }
    if (args.config.dns) result.dns = args.config.dns;
    return result;
  }
  const hostName = await hostDeviceName(sel);
  if (!(await showLink(hostName)))
    throw new CniError(ErrorCode.Internal, `failed to find host device: Link not found: ${hostName}`);
  return attachLink(args, {
    // Into the container under its new name in one step (no collision on either side), the host
    // name kept as the alias so DEL can give it back.
    create: () =>
      ipBatch([`link set dev ${hostName} netns ${args.netns} name ${args.ifname} alias ${hostName}`])
        .then(() => undefined)
        .catch((e: unknown) => {
          throw new CniError(ErrorCode.Internal, `failed to move link ${(e as Error).message}`);
        }),
    // Given back on failure (upstream leaves it in the container when IPAM fails).
    undo: () => moveOut(args.netns, args.ifname),
    notify: false,
  });
}

/** Back to the host under the name its alias keeps; gone (link or namespace) is success. */
async function moveOut(netns: string, ifname: string): Promise<void> {
  let link;
  try {
    link = (await showLink(ifname, netns)) as { ifalias?: string } | undefined;
  } catch (e) {
    const kind = classifyMessage((e as Error).message);
    if (kind === "netns-gone" || kind === "not-found") return;
    throw e;
  }
  if (!link) return;
  const original = link.ifalias ?? "";
  if (!original)
    throw new CniError(
      ErrorCode.Internal,
      `failed to find original ifname for "${ifname}" (alias is not set)`,
    );
  validateName("alias of the container interface", original);
  // ip runs inside the container; the host namespace is this process's.
  await ipBatch([`link set dev ${ifname} netns /proc/${process.pid}/ns/net name ${original} alias ""`], {
    netns,
  }).catch((e: unknown) => {
    throw new CniError(
      ErrorCode.Internal,
      `failed to move "${ifname}" to the host as "${original}": ${(e as Error).message}`,
    );
  });
}

async function cmdDel(args: CmdArgs<HostDeviceConf>): Promise<void> {
  const { dpdk } = load(args.config);
  if (!args.netns) return;
  if (args.config.ipam?.type) await delegateIpam(args);
  if (!dpdk && args.netns) {
    checkNetns(args.netns);
    await moveOut(args.netns, args.ifname);
  }
}

async function cmdCheck(args: CmdArgs<HostDeviceConf>): Promise<void> {
  const { dpdk } = load(args.config);
  checkNetns(args.netns);
  if (args.config.ipam?.type) await delegateIpam(args);
  const prev = args.prevResult;
  if (!prev) throw new CniError(ErrorCode.InvalidNetworkConfig, "Required prevResult missing");
  if (dpdk) return;
  await checkContainerLink({ netns: args.netns, ifname: args.ifname, prev });
}

export const plugin = definePlugin<HostDeviceConf>(
  {
    add: cmdAdd,
    del: cmdDel,
    check: cmdCheck,
    ...ipamGcAndStatus(),
  },
  { name: "host-device", config: schema },
);
