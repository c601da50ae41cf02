/**
 * The vlan plugin: an 802.1Q VLAN link on a master interface, in the container, addressed by IPAM.
 * Upstream's fields: `master` (required), `vlanId` (0-4094), `mtu` (0 to the master's),
 * `linkInContainer`. See docs/vlan-ipvlan-dummy-vrf.md (not proven here: this machine's kernel has
 * no 8021q).
 */
import * as v from "valibot";
import { configError, definePlugin, netConf, type CmdArgs, type Result } from "../../../src/cni/index.js";
import {
  attachLink,
  checkLinkAndAddress,
  checkNetns,
  createContainerLink,
  detachLinkAndAddress,
  lookupMaster,
} from "../../../src/link/attach.js";
import { ipamGcAndStatus } from "../../../src/link/status.js";
import { optionalIfname } from "../../../src/link/config.js";

const schema = netConf({
  master: optionalIfname,
  vlanId: v.optional(v.pipe(v.number(), v.integer("must be an integer")), 0),
  mtu: v.optional(v.pipe(v.number(), v.integer("must be an integer")), 0),
  linkInContainer: v.optional(v.boolean(), false),
});
export type VlanConf = v.InferOutput<typeof schema>;

async function load(args: CmdArgs<VlanConf>): Promise<void> {
  const c = args.config;
  if (!c.master)
    throw configError(
      '"master" field is required. It specifies the host interface name to create the VLAN for',
    );
  if (c.vlanId < 0 || c.vlanId > 4094)
    throw configError(`invalid VLAN ID ${c.vlanId} (must be between 0 and 4095 inclusive)`);
  if (c.mtu < 0) throw configError(`invalid MTU ${c.mtu}, must be [0, master MTU]`);
  checkNetns(args.netns);
  const m = await lookupMaster(c.master, c.linkInContainer ? args.netns : undefined);
  if (c.mtu > m.mtu) throw configError(`invalid MTU ${c.mtu}, must be [0, master MTU(${m.mtu})]`);
}

async function cmdAdd(args: CmdArgs<VlanConf>): Promise<Result> {
  await load(args);
  const c = args.config;
  if (!c.ipam?.type) throw configError("failed to execute IPAM delegate: missing ipam.type");
  const req = {
    kind: "vlan" as const,
    typeArgs: ["id", String(c.vlanId)],
    master: c.master,
    masterInContainer: c.linkInContainer,
    mtu: c.mtu,
  };
  return attachLink(args, { create: () => createContainerLink(req, args.netns, args.ifname), notify: false });
}

async function cmdCheck(args: CmdArgs<VlanConf>): Promise<void> {
  await load(args);
  await checkLinkAndAddress(args, "vlan", { id: args.config.vlanId });
}

export const plugin = definePlugin<VlanConf>(
  { add: cmdAdd, del: detachLinkAndAddress, check: cmdCheck, ...ipamGcAndStatus() },
  { name: "vlan", config: schema },
);
