import { test } from "node:test";
import assert from "node:assert/strict";
import { haveBun, runBun } from "../../helpers/bun.js";

test(
  "under Bun the runner starts programs with Bun.spawn and answers as on Node",
  { skip: !haveBun },
  async () => {
    const r = await runBun("runner-probe.ts", []);
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.deepEqual(got["echo"], { stdout: "in put", stderr: "err\n", code: 3 });
    assert.equal(got["env"], "bar\n");
    assert.equal(got["fd3"], "/dev/null");
    assert.deepEqual(got["signal"], { stdout: "", stderr: "", code: 143, signal: "SIGTERM" });
    assert.deepEqual(got["timeout"], {
      stdout: "",
      stderr: "",
      code: 137,
      signal: "SIGKILL",
      timedOut: true,
    });
    assert.equal(got["notFound"], "not-found");
    assert.equal(got["notFoundPath"], "not-found");
    assert.equal(got["permission"], "permission");
    assert.equal(got["earlyExit"], 0);
  },
);
