/**
 * A container that upstream's nftables portmap set up (tables ip/ip6 cni_hostport): cni-nft's
 * CHECK accepts it, reports it when damaged, and cni-nft's DEL removes it without touching other
 * containers' rules.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { cni, cniOk, firewallState } from "../helpers/cni.js";
import { upstreamNftPortmap } from "../helpers/upstream-layouts.js";

const mappings = [
  { hostPort: 7080, containerPort: 80, protocol: "tcp" as const },
  { hostPort: 7053, containerPort: 53, protocol: "udp" as const, hostIP: "127.0.0.1" },
];
const conf = {
  cniVersion: "1.0.0",
  name: "upnftnet",
  type: "portmap",
  backend: "nftables",
  runtimeConfig: { portMappings: mappings },
  prevResult: {
    cniVersion: "1.0.0",
    interfaces: [{ name: "eth0", sandbox: "/run/netns/x" }],
    ips: [
      { address: "10.86.0.5/24", interface: 0 },
      { address: "fd86::5/64", interface: 0 },
    ],
  },
};

describe("portmap: upstream's nftables layout", () => {
  const nets = new NetnsPool();
  let host: Netns;
  before(async () => {
    await sweepStaleNamespaces();
    host = await nets.create("pmup");
  });
  after(() => nets.destroyAll());

  test("CHECK accepts it, fails when a rule is gone; DEL removes only this container's", async () => {
    await host.sh(["nft", "-f", "-"], upstreamNftPortmap("upctr1", mappings, ["10.86.0.5", "fd86::5"]));
    await host.sh(
      ["nft", "-f", "-"],
      upstreamNftPortmap("other2", [{ hostPort: 7090, containerPort: 80, protocol: "tcp" }], ["10.86.0.6"]),
    );
    const call = { containerId: "upctr1", netns: "/run/netns/x" };
    await cniOk(host, "portmap", "CHECK", conf, call);
    // Another container's CHECK does not pass on upctr1's rules.
    const other = await cni(host, "portmap", "CHECK", conf, { ...call, containerId: "nobody" });
    assert.equal(other.code, 1, other.stdout);

    const listing = await host.sh(["nft", "-a", "list", "chain", "ip", "cni_hostport", "hostports"]);
    const handle = /tcp dport 7080 dnat to 10\.86\.0\.5:80 comment "upctr1" # handle (\d+)/.exec(
      listing,
    )?.[1];
    assert.ok(handle, listing);
    await host.sh(["nft", "delete", "rule", "ip", "cni_hostport", "hostports", "handle", handle]);
    const damaged = await cni(host, "portmap", "CHECK", conf, call);
    assert.equal(damaged.code, 1);
    assert.match(damaged.stdout, /missing/);

    await cniOk(host, "portmap", "DEL", conf, { containerId: "upctr1" });
    const state = await firewallState(host);
    assert.doesNotMatch(state, /upctr1/);
    assert.match(state, /comment "other2"/);
  });
});
