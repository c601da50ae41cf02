/**
 * The in-process exec (libnftables through bun:ffi, what the compiled plugins use) against the
 * nft command: the library's kernel tests run again under Bun on it, the same failing
 * transactions give the same errors on both, the compiled plugins start no nft, and a library
 * that does not load means the command.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUN, haveBun, runBun } from "../helpers/bun.js";
import { ROOT, cniOk } from "../helpers/cni.js";
import { NetnsPool, programsStarted, run, sweepStaleNamespaces, tracingExecs } from "../helpers/netns.js";

const COMPILED = join(ROOT, "dist", "compiled");
const nets = new NetnsPool();
before(sweepStaleNamespaces);
after(() => nets.destroyAll());

test("the nftables library's kernel tests pass on libnftables in-process", { skip: !haveBun }, async () => {
  const files = ["nftables-kernel", "nftables-equivalence", "nftables-injection", "nftables-smoke"].map(
    (f) => `./test/integration/${f}.test.ts`,
  );
  const r = await run(
    [
      "sh",
      "-c",
      `cd "$1" && shift && exec "$@"`,
      "sh",
      ROOT,
      BUN,
      "test",
      "--preload",
      "./test/helpers/require-libnftables.ts",
      ...files,
    ],
    { timeoutMs: 300_000 },
  );
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, / 0 fail/);
});

test(
  "the same failing transactions and listings give the same errors on both execs",
  { skip: !haveBun },
  async () => {
    const ns = await nets.create("nftpar");
    const r = await runBun("nft-parity-probe.ts", [ns.path]);
    assert.equal(r.code, 0, r.stderr);
    const cases = JSON.parse(r.stdout) as Record<
      string,
      Record<string, { code?: string; message?: string; operationIndex?: number; stderr?: string }>
    >;
    const expected: Record<string, [string, number | undefined]> = {
      "delete of a missing chain, third operation": ["ENOENT", 2],
      "create of an existing table": ["EEXIST", 0],
      "delete of a chain a rule jumps to": ["EBUSY", 0],
      "rule text nft cannot parse": ["ESYNTAX", 1],
      "a conflicting element inside a batch": ["EEXIST", 38],
      "jump to a missing chain, in the second table of runAll": ["ENOENT", 2],
      "check of a failing transaction": ["ENOENT", 0],
      "listing a missing chain": ["ENOENT", undefined],
      "listing a missing set": ["ENOENT", undefined],
      "chains of a missing table": ["ENOENT", undefined],
      "getElements of a missing key": ["ENOENT", undefined],
      "a namespace that is gone": ["ENOENT", undefined],
    };
    assert.deepEqual(Object.keys(cases).sort(), Object.keys(expected).sort());
    for (const [name, [code, index]] of Object.entries(expected)) {
      const { command, library } = cases[name] as Record<
        string,
        { code?: string; message?: string; operationIndex?: number; stderr?: string }
      >;
      assert.equal(command?.code, code, name);
      assert.equal(command?.operationIndex, index, name);
      if (name === "a namespace that is gone") {
        // nsenter's words against ours; the same code, and both read as a gone namespace.
        assert.equal(library?.code, code, name);
        assert.match(String(library?.message), /cannot open .*: No such file or directory/);
        continue;
      }
      assert.deepEqual(library, command, name);
      assert.equal(cases[name]!["libraryDump"], cases[name]!["commandDump"], `${name}: the table after it`);
    }
  },
);

/** Every program a compiled bridge ADD and DEL (nftables masquerade) starts, by name. */
async function bridgeExecs(env: string[]): Promise<{ programs: string[]; dumps: string[] }> {
  const host = await nets.create("nftlib");
  const ctr = await nets.create("nftlibc");
  const store = mkdtempSync(join(tmpdir(), "cni-nft-lib-"));
  const trace = join(store, "trace");
  const conf = {
    cniVersion: "1.0.0",
    name: `lib${process.pid % 10000}`,
    type: "bridge",
    bridge: "brlib0",
    isGateway: true,
    ipMasq: true,
    ipMasqBackend: "nftables",
    ipam: { type: "host-local", subnet: "10.198.0.0/24", dataDir: store },
  };
  const wrap = ["env", ...env, ...tracingExecs(trace)];
  const call = { containerId: "ctr-lib", netns: ctr.path, bin: COMPILED, wrap };
  const programs: string[] = [];
  const dumps: string[] = [];
  try {
    for (const verb of ["ADD", "DEL"]) {
      await cniOk(host, "bridge", verb, conf, call);
      programs.push(...programsStarted(trace));
      dumps.push(await host.sh(["nft", "list", "table", "inet", "cni_nft_masquerade"]).catch(() => ""));
    }
  } finally {
    rmSync(store, { recursive: true, force: true });
  }
  return { programs, dumps };
}

const haveCompiled = existsSync(join(COMPILED, "cni-nft-plugins"));

test(
  "the compiled bridge ADD and DEL change nftables without starting nft",
  { skip: !haveCompiled },
  async () => {
    const { programs, dumps } = await bridgeExecs([]);
    assert.ok(!programs.includes("nft"), programs.join(" "));
    assert.match(dumps[0]!, /10\.198\.0\.2/);
    assert.doesNotMatch(dumps[1]!, /10\.198\.0\.2/);
  },
);

test(
  "where libnftables does not load, the compiled plugins run the nft command, with the same result",
  { skip: !haveCompiled },
  async () => {
    const { programs, dumps } = await bridgeExecs(["CNI_NFT_LIBNFTABLES=/nonexistent/libnftables.so.1"]);
    assert.ok(programs.includes("nft"), programs.join(" "));
    assert.match(dumps[0]!, /10\.198\.0\.2/);
    assert.doesNotMatch(dumps[1]!, /10\.198\.0\.2/);
  },
);
