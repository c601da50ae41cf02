/**
 * The plugins the multi-call binary answers to, by name only: the client path decides whether a
 * call goes to the resident daemon before any plugin code is loaded. plugins.ts has a loader for
 * each (a unit test keeps the two lists equal).
 */
export const PLUGIN_NAMES = [
  "bridge",
  "ptp",
  "loopback",
  "macvlan",
  "host-device",
  "tap",
  "vlan",
  "ipvlan",
  "dummy",
  "host-local",
  "static",
  "dhcp",
  "portmap",
  "firewall",
  "tuning",
  "bandwidth",
  "sbr",
  "vrf",
] as const;

/** Plugins whose issue has not landed: they answer VERSION and refuse the rest clearly. */
export const PLANNED_NAMES: readonly string[] = [];
