/**
 * The dummy plugin: a dummy link in the container, addressed by IPAM (required). Same results and
 * errors as upstream's dummy. See docs/vlan-ipvlan-dummy-vrf.md (not proven here: this machine's
 * kernel has no dummy links).
 */
import {
  configError,
  definePlugin,
  baseNetConf,
  type CmdArgs,
  type NetConf,
  type Result,
} from "../../../src/cni/index.js";
import {
  attachLink,
  checkLinkAndAddress,
  checkNetns,
  createContainerLink,
  detachLinkAndAddress,
} from "../../../src/link/attach.js";
import { ipamGcAndStatus } from "../../../src/link/status.js";

async function cmdAdd(args: CmdArgs<NetConf>): Promise<Result> {
  if (!args.config.ipam?.type) throw configError("dummy interface requires an IPAM configuration");
  checkNetns(args.netns);
  const req = { kind: "dummy" as const, typeArgs: [] };
  return attachLink(args, { create: () => createContainerLink(req, args.netns, args.ifname), notify: false });
}

async function cmdCheck(args: CmdArgs<NetConf>): Promise<void> {
  await checkLinkAndAddress(args, "dummy");
}

export const plugin = definePlugin<NetConf>(
  { add: cmdAdd, del: detachLinkAndAddress, check: cmdCheck, ...ipamGcAndStatus() },
  { name: "dummy", config: baseNetConf },
);
