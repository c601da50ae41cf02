import { after, test } from "node:test";
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { loadLibc } from "../../src/ffi/libc.js";
import { haveBun, runBun } from "../helpers/bun.js";
import { NetnsPool } from "../helpers/netns.js";

const nets = new NetnsPool();
after(() => nets.destroyAll());

test("on Node the libc binding is absent (callers take their process path)", async () => {
  assert.equal(await loadLibc(), undefined);
});

test(
  "under Bun, withNetns enters a namespace by path on the calling thread and always comes back",
  { skip: !haveBun },
  async () => {
    const ns = await nets.create("ffi-libc");
    const r = await runBun("ffi-libc-probe.ts", [ns.path]);
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, number | string>;
    const own = statSync("/proc/self/ns/net").ino;
    assert.equal(got["before"], own);
    assert.equal(got["inside"], got["target"]);
    assert.notEqual(got["inside"], own);
    assert.equal(got["after"], own);
    assert.equal(got["missing"], "ENOENT");
    assert.equal(got["thrown"], "from inside");
    assert.equal(got["afterThrow"], own);
  },
);
