/** CNI_NETNS checks that need no root: what is not a network namespace, and the host's own. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CniError, checkNetns } from "../../../src/cni/index.js";

const refusedWith = (re: RegExp) => (e: unknown) =>
  e instanceof CniError && e.code === 4 && re.test(e.message);

test("a regular file, a directory, a missing path, another namespace type: code 4 saying what it is", () => {
  const dir = mkdtempSync(join(tmpdir(), "cni-nft-netns-"));
  try {
    writeFileSync(join(dir, "file"), "");
    assert.throws(() => checkNetns(join(dir, "file")), refusedWith(/is a regular file, not a namespace/));
    assert.throws(() => checkNetns(dir), refusedWith(/is a directory/));
    assert.throws(() => checkNetns(join(dir, "gone")), refusedWith(/is missing: give the path/));
    assert.throws(
      () => checkNetns("/proc/self/ns/mnt"),
      refusedWith(/a mnt namespace, not a network namespace/),
    );
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test("this process's and PID 1's namespaces are the host's", () => {
  assert.equal(checkNetns("/proc/self/ns/net").isHost, true);
  assert.equal(checkNetns(`/proc/${process.pid}/ns/net`).isHost, true);
});
