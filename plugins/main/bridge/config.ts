/** The bridge plugin's config: upstream's fields and defaults, and the checks beyond the schema. */
import * as v from "valibot";
import { CniError, ErrorCode, netConf, requireResultAddress, type CmdArgs } from "../../../src/cni/index.js";
import { parseMac, unicastMacProblem } from "../../../src/address/index.js";
import { validateIfname } from "../../../src/nftables/index.js";
import { requireUsableNetns } from "../../../src/vethplugin/lifecycle.js";

const vlanId = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(4094));
export const schema = netConf({
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

/**
 * Checks that need more than the schema; all before anything changes on the host. Returns the
 * container MAC to set (runtimeConfig, then CNI_ARGS MAC, then the config's), in canonical form.
 */
export function validate(args: CmdArgs<BridgeConf>): { mac?: string } {
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
  requireResultAddress(args.cniVersion, Boolean(c.ipam?.type), "ipam");
  requireUsableNetns(args);
  const mac = c.runtimeConfig?.mac ?? args.args["MAC"] ?? c.mac;
  if (mac === undefined) return {};
  const problem = unicastMacProblem(mac);
  if (problem)
    fail(`MAC address ${JSON.stringify(mac)} ${problem}: give a unicast address such as 0a:58:0a:00:00:02`);
  return { mac: parseMac(mac)! };
}
