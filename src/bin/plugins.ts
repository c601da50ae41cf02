/**
 * The plugins the multi-call binary knows, each loaded lazily so one plugin's code is never loaded
 * for another. A module exports `plugin` (see src/cni/skel.ts `definePlugin`).
 */
import type { Plugin } from "../cni/index.js";
import { registerInProcessIpam } from "../cni/ipam.js";

export type PluginModule = {
  plugin: Plugin<unknown>;
  /** Commands of the executable besides the CNI verbs (`dhcp daemon`); true when it handled argv. */
  subcommand?: (argv: string[]) => Promise<boolean>;
};

export const PLUGINS: Record<string, () => Promise<PluginModule>> = {
  bridge: () => import("../../plugins/main/bridge/bridge.js"),
  ptp: () => import("../../plugins/main/ptp/ptp.js"),
  loopback: () => import("../../plugins/main/loopback/loopback.js"),
  macvlan: () => import("../../plugins/main/macvlan/macvlan.js"),
  "host-device": () => import("../../plugins/main/host-device/host-device.js"),
  tap: () => import("../../plugins/main/tap/tap.js"),
  vlan: () => import("../../plugins/main/vlan/vlan.js"),
  ipvlan: () => import("../../plugins/main/ipvlan/ipvlan.js"),
  dummy: () => import("../../plugins/main/dummy/dummy.js"),
  "host-local": () => import("../../plugins/ipam/host-local/host-local.js"),
  static: () => import("../../plugins/ipam/static/static.js"),
  dhcp: () => import("../../plugins/ipam/dhcp/dhcp.js"),
  portmap: () => import("../../plugins/meta/portmap/portmap.js"),
  firewall: () => import("../../plugins/meta/firewall/firewall.js"),
  tuning: () => import("../../plugins/meta/tuning/tuning.js"),
  bandwidth: () => import("../../plugins/meta/bandwidth/bandwidth.js"),
  sbr: () => import("../../plugins/meta/sbr/sbr.js"),
  vrf: () => import("../../plugins/meta/vrf/vrf.js"),
};

// Our IPAM plugins may run inside a main plugin's process when CNI_PATH resolves to our binary.
for (const name of ["host-local", "static"]) {
  registerInProcessIpam(name, async () => (await PLUGINS[name]!()).plugin);
}
