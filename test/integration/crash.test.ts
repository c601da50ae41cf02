/**
 * Crash safety: each plugin of the chain (bridge -> portmap -> firewall) is SIGKILLed (strace
 * fault injection) when it starts its k-th child, when its k-th child has finished, at its k-th
 * rename (a host-local reservation) and at its k-th netlink send and receive (inside libnftables'
 * transactions), for every k until its ADD gets through. Then what a
 * runtime does after a failed ADD: DEL of the chain (once with the partial result as prevResult, once without, as after a lost
 * result), then GC with no valid attachment. The host must be as before the ADD: links,
 * addresses, routes, nft ruleset, iptables rules, IP reservations, per-attachment records. Both backends.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { NetnsPool, killedAt, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { tempDir } from "../helpers/cni.js";
import { chainAdd, chainConfs, chainDel, chainGc, type Backend } from "../helpers/chain.js";
import { hostState, recordDirs, stateDiff } from "../helpers/state.js";

const PLUGINS = ["bridge", "portmap", "firewall"];
/** k beyond a plugin's count of a syscall lets its ADD through; this only bounds the loop. */
const MAX_K = 40;

/**
 * Kill points (see killedAt): vfork is the compiled plugin starting its k-th child (ip,
 * iptables-restore), wait4 its k-th child having finished, rename host-local's k-th reservation.
 * nft runs in-process (libnftables), so the nftables firewall's ADD starts no child at all; on
 * the nftables backends the netlink calls are kill points too. sendmsg is libnftables sending its
 * k-th batch (the kill lands before it: the batches before it are in, this one is not), sendto
 * its k-th single request (generation and cache reads, our own ctnetlink and nf_tables requests),
 * recvmsg its k-th read of an answer (after a batch went in, before nft knows; inside a listing).
 * strace counts per process, so a child (ip) is killed at its own k-th call, a failure the plugin
 * must survive as well. A plugin makes up to ~30 sendto and recvmsg calls: the suite takes every
 * STRIDE-th k of those two (default 3; CNI_NFT_CRASH_STRIDE=1 for all of them, ~10 minutes more).
 */
const STRIDE = Number(process.env["CNI_NFT_CRASH_STRIDE"] ?? 3);
function killPoints(backend: Backend): { syscall: string; stride: number }[] {
  const every = ["vfork", "wait4", "rename"].map((syscall) => ({ syscall, stride: 1 }));
  if (backend === "iptables") return every;
  return [
    ...every,
    { syscall: "sendmsg", stride: 1 },
    ...["sendto", "recvmsg"].map((syscall) => ({ syscall, stride: STRIDE })),
  ];
}

before(sweepStaleNamespaces);

for (const backend of ["nftables", "iptables"] as Backend[]) {
  describe(`SIGKILL at every child start, child exit and rename of ADD, then DEL and GC leave nothing (${backend})`, () => {
    const nets = new NetnsPool();
    const dir = tempDir(`crash-${backend}`);
    let host: Netns;
    let baseline = "";
    const confs = chainConfs({
      name: `crash${backend.slice(0, 3)}`,
      backend,
      dataDir: dir.path,
      subnet: "10.241.0.0/24",
    });
    // host-local's round-robin cursor moves on; every other file must be as before.
    // The per-attachment records of the host namespace too: DEL and GC must remove them.
    const state = async (): Promise<string> =>
      (await hostState([host], [join(dir.path), ...recordDirs(host.path)])).replace(
        /^.*last_reserved_ip.*$/gm,
        "",
      );
    let n = 0;

    before(async () => {
      host = await nets.create(`cr${backend.slice(0, 3)}`);
      // One container through the chain and back: the shared skeleton (bridge, tables, chains)
      // now exists and stays, as it does on a host that has run containers.
      const c = await nets.create("crwarm");
      const a = { containerId: "warm", netns: c.path, hostPort: 18090 };
      const r = await chainAdd(host, confs, a);
      assert.equal(r.failed, undefined, JSON.stringify(r.failed?.result));
      assert.deepEqual(await chainDel(host, confs, a, r.result), []);
      baseline = await state();
    });
    after(async () => {
      await nets.destroyAll();
      dir.remove();
    });

    for (const plugin of PLUGINS)
      for (const { syscall, stride } of killPoints(backend)) {
        const each = stride === 1 ? "each" : `every ${stride}th`;
        test(`${plugin} killed at ${each} ${syscall}`, async (t) => {
          let completed = false;
          let kills = 0;
          // Each k twice: the DEL after it with the partial result as prevResult, then without.
          for (let trial = 2; trial <= 2 * MAX_K && !completed; trial++) {
            const k = 1 + stride * (Math.floor(trial / 2) - 1);
            const c = await nets.create(`cr${n}`);
            const a = { containerId: `crash${n++}`, netns: c.path, hostPort: 18091 };
            const r = await chainAdd(host, confs, a, {
              wrap: (p) => (p === plugin ? killedAt(syscall, k) : undefined),
            });
            completed = r.failed === undefined;
            if (!completed && trial % 2 === 0) kills++;
            const partial = r.steps.filter((s) => s.result.code === 0).at(-1)?.result.json;
            const withPrev = completed ? r.result : trial % 2 === 0 ? partial : undefined;
            const what = `${plugin} killed at ${syscall} ${k}, DEL ${withPrev ? "with" : "without"} prevResult`;
            const delFailures = await chainDel(host, confs, a, withPrev);
            assert.deepEqual(
              delFailures.map((f) => `${f.plugin}: ${f.result.stdout}`),
              [],
              `${what}: DEL succeeds`,
            );
            const gcFailures = await chainGc(host, confs, []);
            assert.deepEqual(
              gcFailures.map((f) => `${f.plugin}: ${f.result.stdout}`),
              [],
              `${what}: GC succeeds`,
            );
            const now = await state();
            assert.ok(now === baseline, `${what}: nothing left\n${stateDiff(baseline, now)}`);
            await c.destroy();
          }
          assert.ok(completed, `${plugin}'s ADD got through once k passed its ${syscall} count`);
          t.diagnostic(`${plugin}: killed at ${kills} of its ${syscall} calls (${each})`);
        });
      }
  });
}
