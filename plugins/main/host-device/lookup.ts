/**
 * Finding the host device host-device moves, as upstream: by name, by MAC, by kernel path
 * (`<path>/net/<first entry>`), by PCI address (`/sys/bus/pci/devices/<addr>/net`, or under
 * `virtio*` for virtio devices), or by the runtime's `deviceID` (a PCI or auxiliary-bus device). A
 * PCI device bound to a userspace driver (vfio-pci, uio_pci_generic, igb_uio) is DPDK mode: nothing
 * moves. The sysfs root is a parameter so tests can give a tree of their own.
 */
import { existsSync, readdirSync, readlinkSync } from "node:fs";
import { basename, join } from "node:path";
import { CniError, ErrorCode } from "../../../src/cni/index.js";

export const USERSPACE_DRIVERS = ["vfio-pci", "uio_pci_generic", "igb_uio"];

export interface DeviceSelector {
  device?: string;
  hwaddr?: string;
  kernelpath?: string;
  pciBusID?: string;
  /** From runtimeConfig.deviceID when it names an auxiliary-bus device. */
  auxDevice?: string;
}

/** runtimeConfig.deviceID: a PCI address when /sys/bus/pci has it, else an auxiliary device. */
export function applyDeviceId(
  sel: DeviceSelector,
  deviceId: string | undefined,
  sys = "/sys",
): DeviceSelector {
  if (!deviceId) return sel;
  if (existsSync(join(sys, "bus/pci/devices", deviceId))) return { ...sel, pciBusID: deviceId };
  if (existsSync(join(sys, "bus/auxiliary/devices", deviceId)))
    return { ...sel, pciBusID: undefined, auxDevice: deviceId };
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    `runtime config DeviceID ${deviceId} not found or unsupported`,
  );
}

/** True when the PCI device's driver is a userspace (DPDK) one. */
export function isDpdk(pciBusID: string, sys = "/sys"): boolean {
  let driver: string;
  try {
    driver = basename(readlinkSync(join(sys, "bus/pci/devices", pciBusID, "driver")));
  } catch (e) {
    throw new CniError(ErrorCode.Internal, `error with host device: ${(e as Error).message}`);
  }
  return USERSPACE_DRIVERS.includes(driver);
}

function firstEntry(dir: string): string {
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch (e) {
    throw new CniError(
      ErrorCode.Internal,
      `failed to find host device: failed to read directory ${dir}: ${(e as Error).message}`,
    );
  }
  if (!entries[0])
    throw new CniError(
      ErrorCode.Internal,
      `failed to find host device: failed to find network device in path ${dir}`,
    );
  return entries[0];
}

/**
 * The name of the device, for the selectors that go through sysfs (kernelpath, PCI, auxiliary);
 * undefined for name and MAC, which the caller resolves with `ip link`.
 */
export function deviceFromSysfs(sel: DeviceSelector, sys = "/sys"): string | undefined {
  if (sel.device || sel.hwaddr) return undefined;
  if (sel.kernelpath) return firstEntry(join(sel.kernelpath, "net"));
  if (sel.pciBusID) {
    const dev = join(sys, "bus/pci/devices", sel.pciBusID);
    let net = join(dev, "net");
    if (!existsSync(net)) {
      const virtio = (existsSync(dev) ? readdirSync(dev) : []).filter((e) => e.startsWith("virtio")).sort();
      const found = virtio.map((v) => join(dev, v, "net")).find((p) => existsSync(p));
      if (!found)
        throw new CniError(
          ErrorCode.Internal,
          `failed to find host device: no net directory under pci device ${sel.pciBusID}`,
        );
      net = found;
    }
    return firstEntry(net);
  }
  if (sel.auxDevice) return firstEntry(join(sys, "bus/auxiliary/devices", sel.auxDevice, "net"));
  return undefined;
}
