/** CmdArgs for the veth plugins' plan builders, as the skeleton would hand them over. */
import * as v from "valibot";
import type { CmdArgs, Result } from "../../../src/cni/index.js";

export const NETNS = "/run/netns/ctr1";

export function argsFor<S extends v.GenericSchema>(
  schema: S,
  type: string,
  conf: Record<string, unknown>,
  ifname = "eth0",
): CmdArgs<v.InferOutput<S>> {
  const raw = { cniVersion: "1.0.0", name: "net1", type, ...conf };
  return {
    command: "ADD",
    containerId: "ctr1",
    netns: NETNS,
    ifname,
    args: {},
    path: [],
    config: v.parse(schema, raw),
    rawConfig: JSON.stringify(raw),
    cniVersion: "1.0.0",
    env: {},
  };
}

/** What host-local answers for a dual-stack range with a default route per family. */
export const DUAL_STACK_IPAM: Result = {
  cniVersion: "1.0.0",
  ips: [{ address: "10.22.0.5/24" }, { address: "fd22::5/64" }],
  routes: [{ dst: "0.0.0.0/0" }, { dst: "::/0" }],
};
