// rootless: parsing nft's argv for the in-process exec, and the exec Node picks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseInvocation } from "../../src/nftables/libnftables.js";
import { chooseExec, libraryExec } from "../../src/nftables/exec.js";
import { FakeRunner } from "../../src/process/fake.js";

test("the argv the library passes nft is read into flags, dry run, file and command words", () => {
  assert.deepEqual(parseInvocation(["--check", "-f", "-"]), {
    flags: 0,
    dryRun: true,
    version: false,
    file: "-",
    command: "",
  });
  assert.deepEqual(parseInvocation(["--json", "--terse", "list", "chains", "inet"]), {
    flags: (1 << 4) | (1 << 11),
    dryRun: false,
    version: false,
    command: "list chains inet",
  });
  assert.equal(parseInvocation(["-a", "--echo", "list", "table", "ip", "t"])?.flags, (1 << 3) | (1 << 5));
  assert.equal(parseInvocation(["--version"])?.version, true);
});

test("an argv the in-process exec does not know is left to the nft command", () => {
  assert.equal(parseInvocation(["--optimize", "-f", "-"]), undefined);
  assert.equal(parseInvocation(["-f"]), undefined);
  assert.equal(parseInvocation(["-f", "-", "list", "ruleset"]), undefined);
});

test("on Node the nft command runs: the library path exists only under Bun", async () => {
  const runner = new FakeRunner().on(["nft"], {
    code: 0,
    stdout: "nftables v1.0.6 (Lester Gooch #5)\n",
    stderr: "",
  });
  assert.equal(await libraryExec(), undefined);
  const injected = await chooseExec({ runner });
  assert.equal(
    (await injected.run(["--version"], undefined, undefined)).stdout,
    "nftables v1.0.6 (Lester Gooch #5)\n",
  );
  assert.deepEqual(
    runner.calls.map((c) => c.argv),
    [["nft", "--version"]],
  );
});
