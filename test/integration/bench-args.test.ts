// rootless: the bench scripts' command lines only; nothing runs.
/**
 * Every bench script answers `--help` with its usage (exit 0) and refuses an unknown option with
 * a usage error (exit 2) before it starts anything (bench/lib/args.ts): a bench takes minutes,
 * a typo must not start one.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../helpers/cni.js";
import { run } from "../helpers/netns.js";

const BENCH = join(ROOT, "bench");
const scripts = readdirSync(BENCH).filter((f) => f.endsWith(".ts") || f.endsWith(".sh"));
const argv = (script: string, arg: string): string[] =>
  script.endsWith(".sh")
    ? ["bash", join(BENCH, script), arg]
    : [process.execPath, "--import", "tsx", join(BENCH, script), arg];

test("there are bench scripts to check", () => {
  assert.ok(scripts.includes("soak.ts") && scripts.includes("veth-cpu.sh"), scripts.join(" "));
});

for (const script of scripts)
  test(`bench/${script}: --help is the usage, an unknown option a usage error`, async () => {
    const help = await run(argv(script, "--help"), { timeoutMs: 120_000 });
    assert.equal(help.code, 0, help.stdout + help.stderr);
    assert.match(help.stdout, /^usage: /);
    const bad = await run(argv(script, "--no-such-option"), { timeoutMs: 120_000 });
    assert.equal(bad.code, 2, bad.stdout + bad.stderr);
    assert.match(bad.stderr, /--no-such-option/);
    assert.match(bad.stderr, /\nusage: /);
    assert.equal(bad.stdout, "", "nothing ran");
  });

test("a value of the wrong kind or an argument too many is a usage error too", async () => {
  for (const [script, args, problem] of [
    ["soak.ts", ["many"], /cycles must be a whole number of at least 2, not "many"/],
    ["parallel.ts", ["1", "2", "pf"], /backend must be one of nftables, iptables, not "pf"/],
    ["migrate.ts", ["4", "2", "extra"], /unexpected argument "extra"/],
    ["chain.ts", ["--populations", "0,lots"], /--populations must be a whole number/],
    ["chain.ts", ["--shared-run", "--runs", "0"], /runs must be a whole number of at least 1/],
    [
      "chain.ts",
      ["--only", "cni-nft nftables, resident"],
      /--only "cni-nft nftables": not a flavour key \(keys: /,
    ],
    ["chain.ts", ["--only", "baseline"], /--only baseline: not in this run \(it needs --baseline DIR\)/],
  ] as const) {
    const r = await run([process.execPath, "--import", "tsx", join(BENCH, script), ...args]);
    assert.equal(r.code, 2, `${script}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, problem);
  }
});

test("the benches that run plugins take --shared-run (a private /run is their default)", async () => {
  for (const script of [
    "chain.ts",
    "podman.ts",
    "portmap.ts",
    "resident-client.ts",
    "soak.ts",
    "ab.ts",
    "parallel.ts",
    "iptables-steps.ts",
  ]) {
    const help = await run(argv(script, "--help"), { timeoutMs: 120_000 });
    assert.match(help.stdout, /--shared-run +keep the machine's \/run/, script);
  }
});
