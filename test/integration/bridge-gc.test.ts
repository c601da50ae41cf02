/** bridge GC, CHECK and STATUS (spec 1.1.0), with cni-nft's own host-local as IPAM. */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, run, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { cni, cniOk, firewallState, storeFiles, tempDir } from "../helpers/cni.js";

before(sweepStaleNamespaces);

for (const backend of ["nftables", "iptables"]) {
  describe(`bridge GC/CHECK/STATUS with ${backend}`, () => {
    const nets = new NetnsPool();
    const dir = tempDir(`gc-${backend}`);
    let host: Netns;
    before(async () => {
      host = await nets.create(`gc${backend.slice(0, 3)}`);
    });
    after(async () => {
      await nets.destroyAll();
      dir.remove();
    });
    const conf = {
      cniVersion: "1.1.0",
      name: `gc-${backend}`,
      type: "bridge",
      bridge: "gcbr0",
      isGateway: true,
      ipMasq: true,
      ipMasqBackend: backend,
      macspoofchk: true,
      ipam: { type: "host-local", dataDir: dir.path, ranges: [[{ subnet: "10.44.0.0/24" }]] },
    };

    test("STATUS is ready; GC removes what stale attachments left; CHECK notices a missing rule", async () => {
      assert.equal((await cni(host, "bridge", "STATUS", conf, { containerId: "" })).code, 0);
      const [a, b] = [await nets.create("gca"), await nets.create("gcb")];
      const ra = await cniOk(host, "bridge", "ADD", conf, { containerId: "keep", netns: a.path });
      await cniOk(host, "bridge", "ADD", conf, { containerId: "gone", netns: b.path });
      // The runtime lost "gone": its namespace (and so its veth) disappears without a DEL.
      await b.destroy();
      // The kernel removes a deleted namespace's veth peers asynchronously: GC rightly keeps the
      // spoof check of a veth that still exists, so wait until only "keep"'s veth is left.
      for (let i = 0; i < 200; i++) {
        const r = await run(["ip", "-n", host.name, "-o", "link", "show", "type", "veth"]);
        if (r.stdout.trim().split("\n").filter(Boolean).length <= 1) break;
        await new Promise((res) => setTimeout(res, 50));
      }
      const valid = { ...conf, "cni.dev/valid-attachments": [{ containerID: "keep", ifname: "eth0" }] };
      await cniOk(host, "bridge", "GC", valid, { containerId: "" });
      const state = await firewallState(host);
      assert.doesNotMatch(state, /\bgone\b/, "masquerade and spoof check of the stale attachment removed");
      assert.match(state, /\bkeep\b/, "the valid attachment keeps its rules");
      const reserved = Object.entries(storeFiles(`${dir.path}/gc-${backend}`)).filter(([f]) =>
        /^10\./.test(f),
      );
      assert.deepEqual(
        reserved.map(([, v]) => v.split(/\r?\n/)[0]),
        ["keep"],
        "only the valid attachment keeps its address",
      );

      const prev = { ...conf, prevResult: ra };
      await cniOk(host, "bridge", "CHECK", prev, { containerId: "keep", netns: a.path });
      // Remove the masquerade entry behind the plugin's back: CHECK must say so.
      if (backend === "nftables")
        await host.sh(["nft", "flush", "map", "inet", "cni_nft_masquerade", "masq4"]);
      else await host.sh(["iptables", "-t", "nat", "-F", "POSTROUTING"]);
      const check = await cni(host, "bridge", "CHECK", prev, { containerId: "keep", netns: a.path });
      assert.notEqual(check.code, 0);
      assert.match(String((check.json as { msg?: string }).msg), /masquerade|POSTROUTING|MASQUERADE/i);
      if (backend === "nftables") {
        // A damaged shared chain (the subnet's) shows in CHECK.
        const subnetChain = /chain (masq4-[0-9a-f]{12})/.exec(
          await host.sh(["nft", "list", "table", "inet", "cni_nft_masquerade"]),
        )![1]!;
        await host.sh(["nft", "flush", "chain", "inet", "cni_nft_masquerade", subnetChain]);
        const again = await cni(host, "bridge", "CHECK", prev, { containerId: "keep", netns: a.path });
        assert.match(String((again.json as { msg?: string }).msg), new RegExp(`in chain ${subnetChain}`));
      }
      await cniOk(host, "bridge", "DEL", prev, { containerId: "keep", netns: a.path });
    });
  });
}
