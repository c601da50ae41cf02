/**
 * A repeated ADD of the same attachment (no DEL between: a restore, a runtime retrying) leaves
 * one copy of its host state on the kernel: masquerade on nftables and on iptables, the spoof
 * check's elements, with another address the second time; DEL then leaves nothing. A firewall ADD
 * with another nftablesMark rewrites the rules and drops the old mark's counter, and back. The
 * backends run as the plugins run them, on a Host whose nft and iptables run inside a throwaway
 * namespace. test/unit/plugins/ has the same steps against the fakes with literal dumps.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { systemHost } from "../../src/hoststate/index.js";
import { NFTables } from "../../src/nftables/index.js";
import { checkVethState, removeVethState, setUpVethState } from "../../src/link/veth_state.js";
import { NftablesFirewall, NFT_TABLE } from "../../plugins/meta/firewall/firewall_nftables.js";
import type { FirewallSpec } from "../../plugins/meta/firewall/firewall_backend.js";

before(sweepStaleNamespaces);

describe("veth host state: a second ADD on the kernel", () => {
  const nets = new NetnsPool();
  let host: Netns;
  before(async () => {
    host = await nets.create("vrep");
    await host.sh(["ip", "link", "add", "vrep0", "type", "veth", "peer", "name", "vrep1"]);
  });
  after(() => nets.destroyAll());

  for (const backend of ["nftables", "iptables"] as const) {
    test(`${backend} masquerade and the spoof check: one copy after two ADDs, nothing after DEL`, async () => {
      const a = { network: `vrep-${backend}`, containerId: `ctr-${backend}`, ifname: "eth0" };
      const h = systemHost({ netns: host.path });
      const plan = (address: string) => ({
        ipMasq: true,
        backend,
        addresses: [address, "fd00:77::5/64"],
        spoof: { hostVeth: "vrep0", mac: "0a:58:0a:4d:00:05" },
      });
      await setUpVethState(h, a, plan("10.77.0.5/24"));
      await setUpVethState(h, a, plan("10.77.0.5/24"));
      await setUpVethState(h, a, plan("10.77.0.9/24"));
      assert.deepEqual(await checkVethState(h, a, plan("10.77.0.9/24")), []);

      const spoof = await host.sh(["nft", "list", "table", "bridge", "cni_nft_spoofcheck"]);
      // Its two elements and their owner elements, once each.
      assert.equal(spoof.split("\n").filter((l) => l.includes(`id: ${a.containerId}`)).length, 4, spoof);
      if (backend === "nftables") {
        // One element per address, the last ADD's (the earlier address's element taken away).
        const nft = new NFTables({ family: "inet", table: "cni_nft_masquerade", netns: host.path });
        const elements = [
          ...(await nft.listElements("map", "masq4")),
          ...(await nft.listElements("map", "masq6")),
        ].filter((e) => e.comment?.includes(`id: ${a.containerId}`));
        assert.deepEqual(
          elements.map((e) => e.key[0]),
          ["10.77.0.9", "fd00:77::5"],
        );
      } else {
        for (const [save, address] of [
          ["iptables-save", "10.77.0.9/32"],
          ["ip6tables-save", "fd00:77::5/128"],
        ] as const) {
          const jumps = (await host.sh([save, "-t", "nat"]))
            .split("\n")
            .filter((l) => l.startsWith("-A POSTROUTING ") && l.includes(`id: \\"${a.containerId}\\"`));
          assert.equal(jumps.length, 1, save);
          assert.ok(jumps[0]!.includes(`-s ${address} `), jumps[0]);
        }
      }

      await removeVethState(h, a, { ipMasq: true, spoof: true });
      const left = [
        await host.sh(["nft", "list", "ruleset"]),
        await host.sh(["iptables-save", "-t", "nat"]),
        await host.sh(["ip6tables-save", "-t", "nat"]),
      ].join("\n");
      assert.ok(!left.includes(a.containerId), left);
    });
  }

  test("firewall nftables: another nftablesMark rewrites the rules, the old mark's counter goes; and back", async () => {
    const h = systemHost({ netns: host.path });
    const fw = new NftablesFirewall(h.nft("inet", NFT_TABLE), h.tools, h.records("firewall-nftables"));
    const spec = (mark: number): FirewallSpec => ({
      addresses: ["10.78.0.5/32"],
      adminChain: "CNI-ADMIN",
      zone: "trusted",
      ingressPolicy: "open",
      mark,
    });
    const a = { network: "vrep-fw", containerId: "ctr-fw", ifname: "eth0" };
    const marks = async (): Promise<string[]> => {
      const table = await host.sh(["nft", "list", "table", "inet", NFT_TABLE]);
      return [...new Set([...table.matchAll(/0x0000[0-9a-f]{4}/g)].map((m) => m[0]))];
    };
    await fw.setUp(a, spec(0x1000));
    assert.deepEqual(await marks(), ["0x00001000"]);
    await fw.setUp(a, spec(0x4000));
    assert.deepEqual(await marks(), ["0x00004000"]);
    await fw.setUp(a, spec(0x1000));
    assert.deepEqual(await marks(), ["0x00001000"]);
    assert.deepEqual(await fw.check(a, spec(0x1000)), []);
  });
});
