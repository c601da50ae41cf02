/**
 * bridge and ptp DEL run every cleanup step and report every failure: with the IPAM plugin
 * missing from CNI_PATH, DEL fails naming IPAM, but the container link and the masquerade entry
 * are removed all the same; a DEL with IPAM back releases the address. Real kernel.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { UPSTREAM_BIN, cni, cniOk, tempDir } from "../helpers/cni.js";

before(sweepStaleNamespaces);

for (const plugin of ["bridge", "ptp"] as const) {
  describe(`${plugin} DEL with a failing step`, () => {
    const nets = new NetnsPool();
    const dir = tempDir(`vdel-${plugin}`);
    const empty = tempDir(`vdel-${plugin}-path`);
    let host: Netns, c: Netns;
    before(async () => {
      [host, c] = (await Promise.all(["h", "c"].map((t) => nets.create(`vdel${plugin}${t}`)))) as [
        Netns,
        Netns,
      ];
    });
    after(async () => {
      await nets.destroyAll();
      dir.remove();
      empty.remove();
    });

    test("the other steps still run, and the failure names the step", async () => {
      const conf = {
        cniVersion: "1.0.0",
        name: `vdel-${plugin}`,
        type: plugin,
        ipMasq: true,
        ipMasqBackend: "nftables",
        ...(plugin === "bridge" ? { bridge: "vdelbr0", isGateway: true } : {}),
        ipam: { type: "host-local", dataDir: dir.path, ranges: [[{ subnet: "10.68.0.0/24" }]] },
      };
      const call = { containerId: "vdel1", netns: c.path, path: UPSTREAM_BIN };
      const r = await cniOk(host, plugin, "ADD", conf, call);
      const ip = (r["ips"] as Array<{ address: string }>)[0]!.address.split("/")[0]!;
      const store = join(dir.path, conf.name);
      assert.ok(existsSync(join(store, ip)));
      const masq = async (): Promise<string> =>
        (await host.run(["nft", "list", "table", "inet", "cni_nft_masquerade"])).stdout;
      assert.match(await masq(), new RegExp(`${ip.replace(/\./g, "\\.")} `));

      const failed = await cni(
        host,
        plugin,
        "DEL",
        { ...conf, prevResult: r },
        { ...call, path: empty.path },
      );
      assert.notEqual(failed.code, 0);
      assert.match(failed.stdout, /host-local/);
      assert.doesNotMatch((await c.sh(["ip", "-o", "link"])).toString(), /\beth0@/, "container link removed");
      assert.doesNotMatch(await masq(), new RegExp(`${ip.replace(/\./g, "\\.")} `), "masquerade removed");
      assert.ok(existsSync(join(store, ip)), "the reservation stays until IPAM can run");

      await cniOk(host, plugin, "DEL", { ...conf, prevResult: r }, call);
      assert.deepEqual(
        readdirSync(store).filter((f) => /^\d/.test(f)),
        [],
        "the reservation released",
      );
    });
  });
}
