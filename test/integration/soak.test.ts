/**
 * A reduced soak (the full 1,000 cycles: bench/soak.ts): ADD/DEL cycles of the whole chain, 8 at
 * a time, both backends. Every call succeeds; nothing is left (rules, set and map elements, IP
 * reservations, intent records, links), no process stays in the host namespace and this process
 * holds no more descriptors than before. Plugin processes anywhere, our files under /run and
 * latency: bench/soak.ts (other test files run plugins and write /run at the same time here).
 */
import { before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { sweepStaleNamespaces } from "../helpers/netns.js";
import { OUR_BIN, tempDir } from "../helpers/cni.js";
import { soak } from "../helpers/soak.js";

const CYCLES = Number(process.env["CNI_NFT_SOAK_CYCLES"] ?? 24);

before(sweepStaleNamespaces);

describe("soak", () => {
  for (const backend of ["nftables", "iptables"] as const)
    test(`${CYCLES} chain ADD/DEL cycles, 8 at a time, leave nothing (${backend})`, async () => {
      const dir = tempDir(`soak-${backend}`);
      try {
        const r = await soak({ backend, dataDir: dir.path, cycles: CYCLES, width: 8, bin: OUR_BIN });
        assert.deepEqual(r.failures, []);
        assert.equal(r.leftover, "", "nothing left on the host");
        assert.deepEqual(
          r.processes.filter((p) => p.includes("host namespace")),
          [],
          "no process left in the host namespace",
        );
        assert.ok(
          r.fds.after <= r.fds.before,
          `open descriptors: ${r.fds.before} before, ${r.fds.after} after`,
        );
      } finally {
        dir.remove();
      }
    });
});
