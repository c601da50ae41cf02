/**
 * Parallel ADDs into an empty host (issue 15: nft gave up with "Interrupted system call" when a
 * netlink dump was interrupted by a concurrent change, about one ADD in 250): 50 chain ADDs
 * (bridge -> portmap -> firewall) started at once on each backend, every one succeeds, then 50
 * parallel DELs leave the host as one container's ADD and DEL would. More rounds:
 * bench/parallel.ts.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, sweepStaleNamespaces } from "../helpers/netns.js";
import { tempDir } from "../helpers/cni.js";
import { chainAdd, chainConfs, chainDel, type Backend } from "../helpers/chain.js";
import { hostState, recordDirs, stateDiff } from "../helpers/state.js";

const WIDTH = Number(process.env["CNI_NFT_PARALLEL_WIDTH"] ?? 50);

before(sweepStaleNamespaces);

describe("parallel ADDs into an empty host", () => {
  const nets = new NetnsPool();
  after(() => nets.destroyAll());

  for (const backend of ["nftables", "iptables"] as Backend[])
    test(`${WIDTH} chain ADDs at once all succeed, their DELs leave nothing (${backend})`, async () => {
      const dir = tempDir(`par-${backend}`);
      try {
        const host = await nets.create(`par${backend.slice(0, 3)}`);
        const confs = chainConfs({
          name: `par${backend.slice(0, 3)}`,
          backend,
          dataDir: dir.path,
          subnet: backend === "nftables" ? "10.247.0.0/24" : "10.248.0.0/24",
        });
        const state = async (): Promise<string> =>
          (await hostState([host], [dir.path, ...recordDirs(host.path)])).replace(
            /^.*last_reserved_ip.*$/gm,
            "",
          );
        const containers = await Promise.all(Array.from({ length: WIDTH }, (_, i) => nets.create(`pa${i}`)));
        const attachments = containers.map((c, i) => ({
          containerId: `par-${backend}-${i}`,
          netns: c.path,
          hostPort: 18500 + i,
        }));
        const runs = await Promise.all(attachments.map((a) => chainAdd(host, confs, a)));
        assert.deepEqual(
          runs.flatMap((r) => (r.failed ? [`${r.failed.plugin}: ${r.failed.result.stdout.trim()}`] : [])),
          [],
          "every ADD succeeds",
        );
        const dels = await Promise.all(attachments.map((a, i) => chainDel(host, confs, a, runs[i]!.result)));
        assert.deepEqual(
          dels.flat().map((f) => `${f.plugin}: ${f.result.stdout.trim()}`),
          [],
          "every DEL succeeds",
        );
        const afterAll = await state();
        // The shared skeleton stays, as after any container: one ADD and DEL must give the same.
        const one = await nets.create("paone");
        const a = { containerId: `par-${backend}-one`, netns: one.path, hostPort: 18499 };
        const r = await chainAdd(host, confs, a);
        assert.equal(r.failed, undefined);
        assert.deepEqual(await chainDel(host, confs, a, r.result), []);
        const reference = await state();
        assert.ok(afterAll === reference, `nothing left\n${stateDiff(reference, afterAll)}`);
      } finally {
        dir.remove();
      }
    });
});
