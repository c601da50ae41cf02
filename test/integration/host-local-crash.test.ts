// rootless: needs no network namespace and no root (scripts/test.sh runs it for every user)
/**
 * host-local killed while it writes: strace's fault injection SIGKILLs the plugin at its k-th
 * write(2), for every k until an ADD gets through. A reservation is never seen empty, and DEL of
 * the same attachment (what a runtime does after a failed ADD) frees everything. DEL also frees
 * what upstream's host-local leaves when it is killed between creating and writing the file (an
 * empty `<ip>`), and GC removes unfinished reservations.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { killedAt, run } from "../helpers/netns.js";
import { ensureBuilt, execPlugin, OUR_BIN, storeFiles } from "../helpers/cni.js";

const OURS = join(OUR_BIN, "host-local");
let tmp = "";

before(async () => {
  await ensureBuilt();
  tmp = mkdtempSync(join(tmpdir(), "cni-nft-hlcrash-"));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

const conf = (dataDir: string): Record<string, unknown> => ({
  cniVersion: "1.0.0",
  name: "net1",
  type: "bridge",
  ipam: { type: "host-local", dataDir, ranges: [[{ subnet: "10.78.0.0/24" }]] },
});

const env = (command: string, id: string): Record<string, string> => ({
  CNI_COMMAND: command,
  CNI_CONTAINERID: id,
  CNI_NETNS: "/run/netns/x",
  CNI_IFNAME: "eth0",
  CNI_PATH: OUR_BIN,
});

/** The plugin under strace, killed at its k-th write(2) (any fd: the store's, stdout's). */
async function addKilledAtWrite(dataDir: string, id: string, k: number): Promise<number> {
  const r = await run([...killedAt("write", k), OURS], {
    input: JSON.stringify(conf(dataDir)),
    env: { PATH: process.env["PATH"], ...env("ADD", id) },
  });
  return r.code;
}

test("killed at every write of ADD: never an empty reservation; DEL frees all", async () => {
  let completed = false;
  for (let k = 1; k <= 40 && !completed; k++) {
    const dir = join(tmp, `k${k}`);
    completed = (await addKilledAtWrite(dir, `crash${k}`, k)) === 0;
    const files = storeFiles(join(dir, "net1"));
    for (const [name, data] of Object.entries(files))
      if (/^[0-9.]+$/.test(name)) assert.equal(data, `crash${k}\r\neth0`, `k=${k}: ${name} is whole`);
    const del = await execPlugin(OURS, env("DEL", `crash${k}`), conf(dir));
    assert.equal(del.code, 0, del.stdout + del.stderr);
    const left = Object.keys(storeFiles(join(dir, "net1"))).filter(
      (f) => f !== "lock" && !f.startsWith("last_"),
    );
    assert.deepEqual(left, [], `k=${k}: DEL left nothing`);
  }
  assert.ok(completed, "an ADD got through once strace stopped killing it");
});

test("DEL frees an empty reservation (upstream killed mid-ADD) and one torn in the interface name", async () => {
  const dir = join(tmp, "empty");
  const ok = await execPlugin(OURS, env("ADD", "keep"), conf(dir));
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  writeFileSync(join(dir, "net1", "10.78.0.9"), "");
  writeFileSync(join(dir, "net1", "10.78.0.10"), "dead\r\net");
  writeFileSync(join(dir, "net1", "10.78.0.11"), "dea"); // an old-format ID "dea" as far as anyone knows
  const del = await execPlugin(OURS, env("DEL", "dead"), conf(dir));
  assert.equal(del.code, 0, del.stdout + del.stderr);
  const files = storeFiles(join(dir, "net1"));
  assert.equal(files["10.78.0.2"], "keep\r\neth0", "another attachment's reservation stays");
  assert.equal(files["10.78.0.9"], undefined);
  assert.equal(files["10.78.0.10"], undefined);
  assert.equal(files["10.78.0.11"], "dea");
});

test("GC removes an unfinished reservation; ADD next to one hands out that IP whole", async () => {
  const dir = join(tmp, "unfinished");
  mkdirSync(join(dir, "net1"), { recursive: true });
  writeFileSync(join(dir, "net1", ".reserving.10.78.0.2"), "gone\r\neth0");
  const add = await execPlugin(OURS, env("ADD", "new"), conf(dir));
  assert.equal(add.code, 0, add.stdout + add.stderr);
  assert.equal(storeFiles(join(dir, "net1"))["10.78.0.2"], "new\r\neth0");
  writeFileSync(join(dir, "net1", ".reserving.10.78.0.3"), "gone\r\neth0");
  const gc = await execPlugin(
    OURS,
    { CNI_COMMAND: "GC", CNI_PATH: OUR_BIN },
    {
      ...conf(dir),
      cniVersion: "1.1.0",
      "cni.dev/valid-attachments": [{ containerID: "new", ifname: "eth0" }],
    },
  );
  assert.equal(gc.code, 0, gc.stdout + gc.stderr);
  assert.deepEqual(
    Object.keys(storeFiles(join(dir, "net1"))).filter((f) => f !== "lock"),
    ["10.78.0.2", "last_reserved_ip.0"],
  );
});
