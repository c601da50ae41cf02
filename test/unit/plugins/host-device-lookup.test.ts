/** host-device's sysfs lookups on a sysfs tree of the test's own (PCI, virtio, auxiliary, DPDK). */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyDeviceId, deviceFromSysfs, isDpdk } from "../../../plugins/main/host-device/lookup.js";

const sys = mkdtempSync(join(tmpdir(), "cni-nft-sysfs-"));
after(() => rmSync(sys, { recursive: true, force: true }));
const dir = (p: string): void => {
  mkdirSync(join(sys, p), { recursive: true });
};
dir("bus/pci/devices/0000:00:05.0/net/ens5");
dir("bus/pci/devices/0000:00:03.0/virtio2/net/eth0");
dir("bus/pci/devices/0000:00:07.0");
dir("bus/auxiliary/devices/mlx5_core.sf.4/net/sf4");
dir("bus/pci/drivers/vfio-pci");
dir("bus/pci/drivers/virtio-pci");
symlinkSync(join(sys, "bus/pci/drivers/vfio-pci"), join(sys, "bus/pci/devices/0000:00:07.0/driver"));
symlinkSync(join(sys, "bus/pci/drivers/virtio-pci"), join(sys, "bus/pci/devices/0000:00:03.0/driver"));

test("PCI devices: net/, or net/ under virtio*", () => {
  assert.equal(deviceFromSysfs({ pciBusID: "0000:00:05.0" }, sys), "ens5");
  assert.equal(deviceFromSysfs({ pciBusID: "0000:00:03.0" }, sys), "eth0");
  assert.throws(
    () => deviceFromSysfs({ pciBusID: "0000:00:07.0" }, sys),
    /no net directory under pci device 0000:00:07.0/,
  );
});

test("runtimeConfig.deviceID: PCI first, then the auxiliary bus, else refused", () => {
  assert.deepEqual(applyDeviceId({}, "0000:00:05.0", sys), { pciBusID: "0000:00:05.0" });
  const aux = applyDeviceId({ pciBusID: "0000:00:05.0" }, "mlx5_core.sf.4", sys);
  assert.equal(aux.auxDevice, "mlx5_core.sf.4");
  assert.equal(deviceFromSysfs(aux, sys), "sf4");
  assert.throws(
    () => applyDeviceId({}, "0000:09:00.0", sys),
    /runtime config DeviceID 0000:09:00.0 not found or unsupported/,
  );
});

test("a userspace driver is DPDK mode", () => {
  assert.equal(isDpdk("0000:00:07.0", sys), true);
  assert.equal(isDpdk("0000:00:03.0", sys), false);
  assert.throws(() => isDpdk("0000:00:05.0", sys), /error with host device/);
});
