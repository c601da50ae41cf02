/**
 * The CNI core: spec types, version conversion, errors, the plugin skeleton and IPAM delegation.
 *
 * Writing a plugin (plugins/<kind>/<name>/<name>.ts exports `plugin`; src/bin/multicall.ts runs it):
 *
 *   import * as v from "valibot";
 *   import { definePlugin, netConf, delegateIpam, CniError, ErrorCode, type Result } from "../../../src/cni/index.js";
 *
 *   const schema = netConf({ bridge: v.optional(v.string(), "cni0"), mtu: v.optional(v.number()) });
 *   export const plugin = definePlugin<v.InferOutput<typeof schema>>(
 *     {
 *       // args: {command, containerId, netns, ifname, args (CNI_ARGS record), path (CNI_PATH list),
 *       //        config (validated; unknown keys kept), rawConfig, cniVersion, prevResult?, env}
 *       async add(args) {
 *         const ipam = (await delegateIpam(args))!;          // exec ipam.type from CNI_PATH (ADD → Result)
 *         return { cniVersion: args.cniVersion, interfaces: [...], ips: ipam.ips, routes: ipam.routes };
 *       },
 *       async del(args) { await delegateIpam(args); },
 *       async check(args) { ... },                            // only called for cniVersion >= 0.4.0
 *       async gc(args) { args.validAttachments },            // cniVersion >= 1.1.0
 *       async status(args) { ... },                          // cniVersion >= 1.1.0
 *     },
 *     { name: "bridge", config: schema, knownArgs: ["IP", "MAC"] },
 *   );
 *
 * Results are returned in current (1.1.0) form and printed in the config's cniVersion (0.3.x/0.4.0
 * get `ips[].version`, 0.1.0/0.2.0 get ip4/ip6, 1.1.0-only fields dropped below 1.1.0). Throw
 * `new CniError(code, msg, details)` to fail; anything else thrown becomes code 999. A config that
 * fails the schema yields code 7 naming the field. `pluginMain(funcs, about)` runs a plugin as the
 * process; `runPlugin(plugin, env, stdin)` runs it in-process (tests, IPAM delegation).
 */
export * from "./errors.js";
export * from "./prevresult.js";
export * from "./teardown.js";
export type * from "./types.js";
export * from "./version.js";
export * from "./validate.js";
export * from "./config.js";
export * from "../address/index.js";
export * from "./attachment.js";
export {
  definePlugin,
  pluginMain,
  runPlugin,
  type CmdArgs,
  type GcArgs,
  type PluginFuncs,
  type PluginAbout,
  type Plugin,
  type RunOutput,
  type Verb,
  type Env,
} from "./skel.js";
export { checkNetns, refuseHostNetns, type NetnsCheck } from "./netns.js";
export { flockExclusive, withFlock, type FileLock } from "./lock.js";
export { execIpam, delegateIpam, findInPath, registerInProcessIpam, SHIM_MARKER } from "./ipam.js";
