/**
 * The resident daemon's client (cni-nft-client, src/bin/compiled.ts; docs/resident.md) on the
 * real kernel: whatever happens to a call on its way to the daemon, the plugin sees the stdin the runtime
 * wrote, all of it, and prints what it prints without a daemon, byte for byte: served, refused
 * (then run in-process with the stdin the client already read), a stale socket of a killed daemon
 * (connection refused), no socket, and CNI_NFT_RESIDENT=off with a live daemon (never connects).
 * The stdin is larger than a pipe's buffer, so a client that read only part of it, or lost it,
 * would show. And the fronts take the daemon's path only when a socket exists: a sh front by
 * exec'ing the client (cni-nft-client), a C front in its own process. The daemon serves a front
 * only when its bytes are what its build wrote under that name: a foreign file of the name beside
 * it is refused (and its call runs in-process).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, copyFileSync, linkSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { NetnsPool, alive, programsStarted, sweepStaleNamespaces, tracingExecs } from "../helpers/netns.js";
import { cni, tempDir, type CniResult } from "../helpers/cni.js";
import { waitFor } from "../helpers/background.js";
import { COMPILED, haveCompiled, isCFront, startResident } from "../helpers/resident.js";

const skip = haveCompiled ? false : "no compiled binary (npm run build)";
const nets = new NetnsPool();
before(sweepStaleNamespaces);
after(() => nets.destroyAll());

/** tuning ADD prints its prevResult: ~200 KB of search domains make the result depend on all of stdin. */
function bigTuning(tag: string): object {
  const search = Array.from({ length: 8000 }, (_, i) => `d${i}.${tag}.example`);
  return {
    cniVersion: "1.0.0",
    name: `${tag}net`,
    type: "tuning",
    prevResult: {
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", sandbox: "/proc/1/ns/net" }],
      ips: [{ address: "10.215.0.2/24", interface: 0 }],
      dns: { search },
    },
  };
}

test(
  "every way to the daemon or around it: the plugin gets all of stdin; output and exit code as without a daemon",
  { skip },
  async () => {
    const [host, c] = await Promise.all([nets.create("rch"), nets.create("rcc")]);
    const conf = bigTuning("rc");
    assert.ok(JSON.stringify(conf).length > 128 * 1024);
    const daemon = await startResident(host);
    const dir = tempDir("resident-client");
    const call = (env: Record<string, string>, verb = "ADD", body: object = conf): Promise<CniResult> =>
      cni(host, "tuning", verb, body, {
        containerId: "rc",
        netns: c.path,
        bin: COMPILED,
        nsenter: true,
        env,
      });
    const same = (r: CniResult, want: CniResult, how: string): void => {
      assert.equal(r.code, want.code, `${how}: ${r.stdout}`);
      assert.equal(r.stdout, want.stdout, how);
      assert.equal(r.stderr, want.stderr, how);
    };
    try {
      // A variable the daemon holds per process: a caller with another value is refused.
      const lib = { CNI_NFT_LIBNFTABLES: "/nonexistent/libnftables.so.1" };
      const alone = await call({ CNI_NFT_RESIDENT: "off", ...lib });
      assert.equal(alone.code, 0, alone.stdout);
      assert.equal((alone.json?.["dns"] as { search: string[] }).search.length, 8000);

      same(await call({ ...daemon.env, ...lib }), alone, "refused");
      assert.equal(daemon.lines(/refused: CNI_NFT_LIBNFTABLES/).length, 1, daemon.log());

      same(await call({ ...daemon.env, CNI_NFT_RESIDENT: "off", ...lib }), alone, "off");
      same(await call({ CNI_NFT_RESIDENT_SOCKET: `${dir.path}/absent.sock`, ...lib }), alone, "no socket");
      assert.equal(daemon.lines(/refused|start /).length, 1, "off and no socket never reached the daemon");

      const served = await call(daemon.env);
      same(served, await call({ CNI_NFT_RESIDENT: "off" }), "served");
      assert.equal(daemon.lines(/done tuning ADD/).length, 1, daemon.log());

      // A bad call: the error, its exit code and nothing on stderr, served as in-process.
      const bad = { ...conf, type: 7 };
      const badAlone = await call({ CNI_NFT_RESIDENT: "off" }, "ADD", bad);
      assert.equal(badAlone.code, 1);
      assert.match(badAlone.stdout, /"code": 7/);
      same(await call(daemon.env, "ADD", bad), badAlone, "bad");

      // A killed daemon leaves its socket: connection refused, after the client read stdin.
      process.kill(daemon.pid, "SIGKILL");
      await waitFor("the daemon to be gone", () => (alive(daemon.pid) ? undefined : true));
      same(await call({ ...daemon.env, ...lib }), alone, "stale socket");
    } finally {
      await daemon.stop();
      dir.remove();
    }
  },
);

test(
  "the front takes the daemon's path only when a daemon's socket exists and the client is not turned off",
  { skip },
  async () => {
    const host = await nets.create("rce");
    const daemon = await startResident(host);
    const dir = tempDir("resident-execs");
    const tuning = { cniVersion: "1.0.0", name: "rcenet", type: "tuning" };
    try {
      // A C front is the client: a served call starts no other program.
      const cases: Array<[Record<string, string>, string[]]> = [
        [daemon.env, isCFront() ? [] : ["cni-nft-client"]],
        [{ CNI_NFT_RESIDENT_SOCKET: `${dir.path}/absent.sock` }, ["cni-nft-plugins"]],
        [{ ...daemon.env, CNI_NFT_RESIDENT: "off" }, ["cni-nft-plugins"]],
      ];
      for (const [i, [env, binaries]] of cases.entries()) {
        const trace = `${dir.path}/trace-${i}`;
        const r = await cni(host, "tuning", "DEL", tuning, {
          containerId: "rce",
          bin: COMPILED,
          nsenter: true,
          env,
          wrap: tracingExecs(trace),
        });
        assert.equal(r.code, 0, r.stdout);
        assert.deepEqual(programsStarted(trace), ["tuning", ...binaries], JSON.stringify(env));
      }
      assert.equal(daemon.lines(/done tuning DEL/).length, 1, daemon.log());
      assert.equal(daemon.lines(/refused/).length, 0, daemon.log());
    } finally {
      await daemon.stop();
      dir.remove();
    }
  },
);

test(
  "a file beside the daemon named like a plugin is its build's front only with the bytes the build wrote",
  { skip: skip || (!isCFront() && "the fronts are sh scripts (their client connects, not they)") },
  async () => {
    const host = await nets.create("rcf");
    const tuning = { cniVersion: "1.0.0", name: "rcfnet", type: "tuning" };
    for (const foreign of [false, true]) {
      // A build's directory as an install makes it: the binary, its CLI link, the front copied.
      const dir = tempDir(`resident-front-${foreign ? "foreign" : "own"}`);
      try {
        linkSync(join(COMPILED, "cni-nft-plugins"), join(dir.path, "cni-nft-plugins"));
        symlinkSync("cni-nft-plugins", join(dir.path, "cni-nft"));
        copyFileSync(join(COMPILED, "tuning"), join(dir.path, "tuning"));
        // One byte more: the same name and the same behaviour, but not a file the build wrote.
        if (foreign) appendFileSync(join(dir.path, "tuning"), "\0");
        const daemon = await startResident(host, { compiled: dir.path });
        try {
          const call = (env: Record<string, string>): Promise<CniResult> =>
            cni(host, "tuning", "DEL", tuning, { containerId: "rcf", bin: dir.path, nsenter: true, env });
          const r = await call(daemon.env);
          assert.equal(r.code, 0, r.stdout);
          assert.deepEqual(r, await call({ CNI_NFT_RESIDENT: "off" }), "the same answer either way");
          if (foreign) {
            assert.equal(
              daemon.lines(/refused: caller in another build of the plugins/).length,
              1,
              daemon.log(),
            );
            assert.equal(daemon.lines(/done tuning DEL/).length, 0, daemon.log());
          } else {
            assert.equal(daemon.lines(/done tuning DEL/).length, 1, daemon.log());
            assert.equal(daemon.lines(/refused/).length, 0, daemon.log());
          }
        } finally {
          await daemon.stop();
        }
      } finally {
        dir.remove();
      }
    }
  },
);
