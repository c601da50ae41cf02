/**
 * `cni-nft completion bash|zsh`: both scripts parse (`bash -n`, `zsh -n`), and bash completes
 * commands, flags and the network names of the config directory through the real CLI.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OUR_BIN, ensureBuilt, tempDir } from "../helpers/cni.js";
import { run } from "../helpers/netns.js";

const CLI = join(OUR_BIN, "cni-nft");
const tmp = tempDir("completion");
const conf = join(tmp.path, "net.d");

before(async () => {
  await ensureBuilt();
  mkdirSync(conf, { recursive: true });
  writeFileSync(
    join(conf, "10-alpha.conflist"),
    JSON.stringify({ cniVersion: "1.0.0", name: "alpha", plugins: [{ type: "bridge" }] }),
  );
  writeFileSync(
    join(conf, "20-beta.conf"),
    JSON.stringify({ cniVersion: "0.4.0", name: "beta", type: "ptp" }),
  );
  writeFileSync(join(conf, "30-broken.conflist"), "{");
});
after(() => tmp.remove());

async function script(shell: string): Promise<string> {
  const r = await run([CLI, "completion", shell]);
  assert.equal(r.code, 0, r.stderr);
  const file = join(tmp.path, `cni-nft.${shell}`);
  writeFileSync(file, r.stdout);
  return file;
}

test("completion scripts parse: bash -n and zsh -n", async () => {
  const bash = await run(["bash", "-n", await script("bash")]);
  assert.equal(bash.code, 0, bash.stderr);
  const zsh = await run(["zsh", "-n", await script("zsh")]);
  assert.equal(zsh.code, 0, zsh.stderr);
});

async function complete(line: string[]): Promise<string[]> {
  const file = await script("bash");
  const words = line.map((w) => `'${w}'`).join(" ");
  const prog = `source ${file}; COMP_WORDS=(${words}); COMP_CWORD=${line.length - 1}; _cni_nft; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = await run(["bash", "-c", prog], {
    env: { PATH: `${OUR_BIN}:${process.env.PATH}`, NETCONFPATH: conf },
  });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean);
}

test("bash completes commands, flags and network names from the config directory", async () => {
  assert.deepEqual(await complete(["cni-nft", "li"]), ["list"]);
  assert.deepEqual(await complete(["cni-nft", "list", "--ch"]), ["--check"]);
  assert.deepEqual(await complete(["cni-nft", "add", ""]), ["alpha", "beta"]);
  assert.deepEqual(await complete(["cni-nft", "list", "alpha", "b"]), ["beta"]);
  assert.deepEqual(await complete(["cni-nft", "completion", ""]), ["bash", "zsh"]);
});

test("completion: an unknown shell says what to run", async () => {
  const r = await run([CLI, "completion", "fish"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no completion for shell "fish"; run 'cni-nft completion bash'/);
  assert.match((await run([CLI, "completion", "--help"])).stdout, /Examples:/);
});

test("every command's --help has an example; the completion knows every command", async () => {
  const { COMMAND_SPECS } = await import("../../src/cli/completion.js");
  const main = await run([CLI, "--help"]);
  for (const c of COMMAND_SPECS) {
    assert.match(main.stdout, new RegExp(`^  ${c.name}\\b`, "m"), `cni-nft --help lists ${c.name}`);
    const r = await run([CLI, c.name, "--help"]);
    assert.equal(r.code, 0, `${c.name} --help: ${r.stderr}`);
    assert.match(r.stdout, /Examples?:\n {2}\S/, `${c.name} --help has an example`);
  }
});

test("CLI errors say what to do next", async () => {
  const env = { PATH: process.env.PATH, NETCONFPATH: conf };
  const noNet = await run([CLI, "gc", "nope"], { env });
  assert.equal(noNet.code, 1);
  assert.match(
    noNet.stderr,
    /no net configuration with name "nope" .*'cni-nft completion networks' lists the networks/,
  );
  assert.match((await run([CLI, "add", "--frob"], { env })).stderr, /unknown option --frob/);
  assert.match((await run([CLI, "list", "--frob"], { env })).stderr, /see 'cni-nft list --help'/);
  assert.match(
    (await run([CLI, "inspect"], { env })).stderr,
    /give one CONTAINER-ID.*'cni-nft list' shows them/,
  );
  const caps = await run([CLI, "add", "alpha", "/nonexistent"], { env: { ...env, CAP_ARGS: "{" } });
  assert.match(caps.stderr, /CAP_ARGS is not valid JSON: .*give an object, e\.g\./);
});
