/**
 * A repeated ADD of one attachment (the same container and interface again, no DEL between: a
 * runtime retrying, `cni-nft restore`) on the kernel, alone and with a few hundred other
 * attachments on the host: portmap and firewall (nftables backends) run as a runtime runs them
 * (the executables, env and JSON on stdin, inside a throwaway host namespace), masquerade as
 * bridge's ADD runs it (the host-state step, in-process, on the kernel through nft). The second
 * ADD leaves the ruleset exactly as the first left it (one copy of everything), CHECK passes,
 * and DEL removes all of the attachment, leaving the others as they were. The repeat asserts
 * its recorded keys in one transaction instead of listing the table: the same ADD run
 * in-process on the kernel with its nft calls counted reads nothing (the fakes' tests,
 * test/unit/plugins/portmap-repeat.test.ts and the repeated-ADD tests of masquerade and
 * firewall, compare the dumps and the slow paths with literal text).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { cni, cniOk, ensureBuilt } from "../helpers/cni.js";
import { systemHost } from "../../src/hoststate/index.js";
import { nftOwnerHash } from "../../src/cni/attachment.js";
import { MASQ_TABLE } from "../../src/ipmasq/index.js";
import {
  declareSkeleton,
  desired as masqDesired,
  ownTransaction as masqOwn,
} from "../../src/ipmasq/ipmasq_nftables_layout.js";
import { removeVethState, setUpVethState } from "../../src/link/veth_state.js";
import { portmapBackends } from "../../plugins/meta/portmap/backends.js";
import { firewallBackends } from "../../plugins/meta/firewall/backends.js";
import type { PortMapConf, PortMapSpec } from "../../plugins/meta/portmap/config.js";
import {
  NFT_TABLE as PORTMAP_TABLE,
  desired as portmapDesired,
  ownTransaction as portmapOwn,
  staticTransaction,
} from "../../plugins/meta/portmap/portmap_nftables_layout.js";
import { readCountingHost } from "../helpers/nft-reads.js";
import { DEFAULT_NFT_MARK } from "../../plugins/meta/firewall/firewall_backend.js";

before(async () => {
  await sweepStaleNamespaces();
  await ensureBuilt();
});

const NETWORK = "repeatnet";
const SUBNET = "10.67.0.0/16";
const others = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const otherAddress = (i: number): string => `10.67.${1 + (i >> 8)}.${i & 255}`;

/** One TCP mapping to port 80 of `address`, masqueraded as portmap's defaults say. */
const portmapSpec = (address: string, hostPort: number): PortMapSpec => ({
  snat: true,
  masqAll: false,
  markMasqBit: 13,
  conditionsV4: [],
  conditionsV6: [],
  mappings: [{ hostPort, containerPort: 80, protocol: "tcp" }],
  containers: [{ family: 4, address, subnet: SUBNET }],
});

/**
 * A few hundred attachments of the same network and subnet: portmap's and masquerade's written in
 * one transaction each, in their backends' exact layouts, the firewall's through its backend.
 */
async function fill(host: Netns, n: number): Promise<void> {
  const h = systemHost({ netns: host.path });
  const a = (i: number) => ({ network: NETWORK, containerId: `other${i}`, ifname: "eth0" });
  const firewall = firewallBackends(h).find((b) => b.name === "nftables")!;
  const pm = h.nft("inet", PORTMAP_TABLE);
  const pmTx = pm.newTransaction();
  staticTransaction(pmTx);
  const mq = h.nft("inet", MASQ_TABLE);
  const mqTx = mq.newTransaction();
  declareSkeleton(mqTx);
  for (const i of others(n)) {
    const c: PortMapConf = { ...a(i), ...portmapSpec(otherAddress(i), 20000 + i) };
    portmapOwn(pmTx, nftOwnerHash(c), portmapDesired(c), "add");
    masqOwn(mqTx, nftOwnerHash(a(i)), masqDesired(a(i), { addresses: [`${otherAddress(i)}/16`] }));
  }
  await Promise.all([
    n ? pm.run(pmTx) : undefined,
    n ? mq.run(mqTx) : undefined,
    (async () => {
      for (const i of others(n))
        await firewall.setUp(a(i), {
          addresses: [`${otherAddress(i)}/32`],
          adminChain: "CNI-ADMIN",
          zone: "trusted",
          ingressPolicy: "open",
          mark: DEFAULT_NFT_MARK,
        });
    })(),
  ]);
}

const ruleset = (host: Netns): Promise<string> => host.sh(["nft", "--stateless", "list", "ruleset"]);

for (const population of [0, 300]) {
  describe(`a repeated ADD on the kernel, ${population} other attachments`, () => {
    const nets = new NetnsPool();
    let host: Netns;
    let ctr: Netns;
    const id = `repeat-${process.pid}-${population}`;
    const prevResult = {
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", sandbox: "" }],
      ips: [{ address: "10.67.255.2/16", interface: 0 }],
    };
    const conf = (type: string): object => ({
      cniVersion: "1.0.0",
      name: NETWORK,
      type,
      backend: "nftables",
      ...(type === "portmap"
        ? { runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }] } }
        : {}),
      prevResult,
    });

    before(async () => {
      [host, ctr] = await Promise.all([nets.create("rah"), nets.create("rac")]);
      prevResult.interfaces[0]!.sandbox = ctr.path;
      await fill(host, population);
    });
    after(() => nets.destroyAll());

    test("portmap and firewall (the executables): the second ADD changes nothing, DEL removes all", async () => {
      const before = await ruleset(host);
      const call = { containerId: id, netns: ctr.path };
      for (const plugin of ["portmap", "firewall"]) await cniOk(host, plugin, "ADD", conf(plugin), call);
      const once = await ruleset(host);
      assert.match(once, new RegExp(`id: ${id}`));
      for (const plugin of ["portmap", "firewall"]) await cniOk(host, plugin, "ADD", conf(plugin), call);
      assert.equal(await ruleset(host), once);
      // The same ADD in-process on the kernel (the plugins' records are there: same namespace),
      // its nft calls counted: it asserts its keys in one transaction and reads nothing.
      const reads: string[] = [];
      const h = readCountingHost(systemHost({ netns: host.path }), reads);
      const a = { network: NETWORK, containerId: id, ifname: "eth0" };
      await portmapBackends(h)
        .find((b) => b.name === "nftables")!
        .setUp(a, portmapSpec("10.67.255.2", 8080));
      await firewallBackends(h)
        .find((b) => b.name === "nftables")!
        .setUp(a, {
          addresses: ["10.67.255.2/32"],
          adminChain: "CNI-ADMIN",
          zone: "trusted",
          ingressPolicy: "open",
          mark: DEFAULT_NFT_MARK,
        });
      assert.deepEqual(reads, []);
      assert.equal(await ruleset(host), once);
      for (const plugin of ["portmap", "firewall"]) await cniOk(host, plugin, "CHECK", conf(plugin), call);
      // DEL as a runtime's after a failed ADD sends it: no prevResult, no mappings (the records).
      for (const plugin of ["portmap", "firewall"]) {
        const { prevResult: _, runtimeConfig: __, ...bare } = conf(plugin) as Record<string, unknown>;
        const r = await cni(host, plugin, "DEL", bare, call);
        assert.equal(r.code, 0, r.stderr);
      }
      const left = await ruleset(host);
      assert.doesNotMatch(left, new RegExp(id));
      if (population > 0) assert.equal(left, before);
    });

    test("masquerade (bridge's host-state step): the second ADD changes nothing and reads nothing, DEL removes all", async () => {
      const reads: string[] = [];
      const h = readCountingHost(systemHost({ netns: host.path }), reads);
      const a = { network: NETWORK, containerId: id, ifname: "eth0" };
      const plan = {
        ipMasq: true,
        backend: "nftables" as const,
        addresses: ["10.67.255.2/16", "fd67::2/64"],
      };
      const before = await ruleset(host);
      await setUpVethState(h, a, plan);
      const once = await ruleset(host);
      assert.match(once, new RegExp(`id: ${id}`));
      reads.length = 0;
      await setUpVethState(h, a, plan);
      assert.deepEqual(reads, []);
      assert.equal(await ruleset(host), once);
      await removeVethState(h, a, { ipMasq: true, spoof: false });
      const left = await ruleset(host);
      assert.doesNotMatch(left, new RegExp(id));
      // Its IPv6 subnet was its own (its chain goes); the IPv4 one is the others' too.
      if (population > 0) assert.equal(left, before);
    });
  });
}
