/** The attachments and specs the portmap unit tests share. */
import type { PortMapSpec } from "../../../plugins/meta/portmap/config.js";
import { FakeHost } from "../../../src/hoststate/fake.js";
import { portmapBackends } from "../../../plugins/meta/portmap/backends.js";

export type Name = "iptables" | "nftables";
export const A = { network: "net1", containerId: "ctr1", ifname: "eth0" };
export const B = { network: "net1", containerId: "ctr2", ifname: "eth0" };
/** Another network: a GC of net1 never touches it. */
export const C = { network: "net2", containerId: "ctr3", ifname: "eth0" };
export const BASE: PortMapSpec = {
  snat: true,
  masqAll: false,
  markMasqBit: 13,
  conditionsV4: [],
  conditionsV6: [],
  mappings: [],
  containers: [],
};
/** Dual stack, tcp and udp, any host address. */
export const SPEC_A: PortMapSpec = {
  ...BASE,
  mappings: [
    { hostPort: 8080, containerPort: 80, protocol: "tcp" },
    { hostPort: 5353, containerPort: 53, protocol: "udp" },
  ],
  containers: [
    { family: 4, address: "10.88.0.5", subnet: "10.88.0.0/24" },
    { family: 6, address: "fd00::5", subnet: "fd00::/64" },
  ],
};
/** A hostIP and conditions (in each backend's syntax). */
export const specB = (name: Name): PortMapSpec => ({
  ...BASE,
  conditionsV4: name === "iptables" ? ["-s", "192.168.0.0/16"] : ["ip saddr 192.168.0.0/16"],
  mappings: [{ hostPort: 9090, containerPort: 90, protocol: "tcp", hostIP: "192.168.1.1", hostFamily: 4 }],
  containers: [{ family: 4, address: "10.88.0.6", subnet: "10.88.0.0/24" }],
});
export const SPEC_C: PortMapSpec = {
  ...BASE,
  mappings: [{ hostPort: 7070, containerPort: 70, protocol: "tcp" }],
  containers: [{ family: 4, address: "10.99.0.7", subnet: "10.99.0.0/16" }],
};

/** The current nftables layout after ADD of A, B and C: what an upgrade must end in. */
export async function currentDump(): Promise<string> {
  const host = new FakeHost();
  const b = portmapBackends(host).find((x) => x.name === "nftables")!;
  await b.setUp(A, SPEC_A);
  await b.setUp(B, specB("nftables"));
  await b.setUp(C, SPEC_C);
  return host.dump();
}
