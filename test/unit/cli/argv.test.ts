import { test } from "node:test";
import assert from "node:assert/strict";
import { parseArgv } from "../../../src/cli/cli.js";
import { CniError } from "../../../src/cni/index.js";

test("the command first, options anywhere in both forms, the rest positional", () => {
  assert.deepEqual(
    parseArgv(["add", "--ifname", "eth1", "net", "--json", "/run/netns/x", "--cache-dir=/tmp/c"]),
    {
      command: "add",
      positional: ["net", "/run/netns/x"],
      json: true,
      help: false,
      opts: { ifname: "eth1", "cache-dir": "/tmp/c" },
    },
  );
  assert.deepEqual(parseArgv(["--container-id", "c1", "del", "net", "ns"]).opts, { "container-id": "c1" });
});

test("help in every spelling", () => {
  for (const argv of [["-h"], ["--help"], ["help"], ["add", "help"], ["gc", "--help"]])
    assert.equal(parseArgv(argv).help, true, argv.join(" "));
  assert.equal(parseArgv(["gc", "-h"]).command, "gc");
  assert.deepEqual(parseArgv([]), { command: undefined, positional: [], json: false, help: false, opts: {} });
});

test("refusals say what to fix, with code 4", () => {
  const refused = (argv: string[], msg: string) =>
    assert.throws(
      () => parseArgv(argv),
      (e: unknown) => e instanceof CniError && e.code === 4 && e.message === msg,
      argv.join(" "),
    );
  refused(["frob"], 'unknown command "frob" (try --help)');
  refused(["add", "--frob"], "unknown option --frob");
  refused(["add", "--frob=1"], "unknown option --frob=1");
  refused(["add", "--json=yes"], "unknown option --json=yes");
  refused(["add", "net", "--ifname"], "option --ifname needs a value");
});
