/**
 * The plugins the multi-call binary knows, each loaded lazily so one plugin's code is never loaded
 * for another. A module exports `plugin` (see src/cni/skel.ts `definePlugin`).
 */
import type { Plugin } from "../cni/index.js";

export type PluginModule = { plugin: Plugin<unknown> };

export const PLUGINS: Record<string, () => Promise<PluginModule>> = {
  bridge: () => import("../../plugins/main/bridge/bridge.js"),
  ptp: () => import("../../plugins/main/ptp/ptp.js"),
  loopback: () => import("../../plugins/main/loopback/loopback.js"),
};
