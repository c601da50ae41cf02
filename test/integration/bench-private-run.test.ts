/**
 * bench/lib/private-run.ts on the kernel: a bench re-executes itself in a mount namespace of its
 * own with a fresh tmpfs on /run (nothing it puts there reaches the machine's /run), passes its
 * exit status and the signals it is sent through the outer process, and refuses to mount when it
 * is not in a new mount namespace. `--shared-run` keeps the machine's /run. A bench that asks for
 * a network namespace (bench/iptables-steps.ts) gets one with or without `--shared-run`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../helpers/cni.js";
import { run } from "../helpers/netns.js";
import { privateRun } from "../../bench/lib/private-run.js";

const root = process.getuid?.() === 0;
const PROBE = [process.execPath, "--import", "tsx", join(ROOT, "test/helpers/private-run-probe.ts")];
interface Seen {
  pid: number;
  mntns: string;
  netns: string;
  fstype: string;
  header: string;
}
const seen = (stdout: string): Seen => JSON.parse(stdout.trim().split("\n").pop()!) as Seen;

test(
  "a private /run: a tmpfs in another mount namespace, invisible outside; the exit status passes",
  { skip: !root && "needs root" },
  async () => {
    const mark = `/run/cni-nft-private-run-probe-${process.pid}`;
    const r = await run([...PROBE, "--touch", mark, "--exit", "3"], { timeoutMs: 60_000 });
    assert.equal(r.code, 3, r.stderr);
    const s = seen(r.stdout);
    assert.equal(s.fstype, "tmpfs");
    assert.notEqual(s.mntns, readlinkSync("/proc/self/ns/mnt"));
    assert.match(s.header, /^\/run: private/);
    assert.equal(existsSync(mark), false, "the file made in the private /run is not on the machine's");
  },
);

test(
  "--shared-run: the machine's /run, no new mount namespace",
  { skip: !root && "needs root" },
  async () => {
    const r = await run([...PROBE, "--shared-run"], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    const s = seen(r.stdout);
    assert.equal(s.mntns, readlinkSync("/proc/self/ns/mnt"));
    assert.match(s.header, /--shared-run/);
  },
);

test(
  "a network namespace of its own when asked, with a private /run or with --shared-run",
  { skip: !root && "needs root" },
  async () => {
    for (const shared of [false, true]) {
      const r = await run([...PROBE, "--network", ...(shared ? ["--shared-run"] : [])], {
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      const s = seen(r.stdout);
      assert.notEqual(s.netns, readlinkSync("/proc/self/ns/net"), `shared ${shared}`);
      assert.match(s.header, /; a network namespace of its own$/);
      if (shared) assert.equal(s.mntns, readlinkSync("/proc/self/ns/mnt"));
      else assert.equal(s.fstype, "tmpfs");
    }
  },
);

test(
  "a signal to the outer process reaches the bench once, and the outer exits as the bench did",
  { skip: !root && "needs root" },
  async () => {
    const outer = spawn(PROBE[0]!, [...PROBE.slice(1), "--wait"], { stdio: ["ignore", "pipe", "inherit"] });
    const line = await new Promise<string>((resolve) =>
      outer.stdout.once("data", (d: Buffer) => resolve(d.toString())),
    );
    const inner = seen(line).pid;
    assert.notEqual(inner, outer.pid);
    const exited = new Promise<number | null>((resolve) => outer.once("exit", (code) => resolve(code)));
    outer.kill("SIGTERM");
    assert.equal(await exited, 128 + 15);
    assert.equal(existsSync(`/proc/${inner}`), false, "the bench is gone too");
  },
);

test("it refuses to write the host's tables from the network namespace it started in", async () => {
  process.env["CNI_NFT_BENCH_OUTER_NETNS"] = readlinkSync("/proc/self/ns/net");
  await assert.rejects(
    privateRun(true, { network: true }),
    /not in a network namespace of its own.*refusing to write the host's tables/,
  );
  assert.equal(process.env["CNI_NFT_BENCH_OUTER_NETNS"], undefined);
});

test("it refuses to mount over /run from the mount namespace it started in", async () => {
  process.env["CNI_NFT_BENCH_OUTER_MNTNS"] = readlinkSync("/proc/self/ns/mnt");
  await assert.rejects(
    privateRun(false),
    /not in a mount namespace of its own.*refusing to mount over \/run/,
  );
  assert.equal(process.env["CNI_NFT_BENCH_OUTER_MNTNS"], undefined);
});
