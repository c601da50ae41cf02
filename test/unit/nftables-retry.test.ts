/**
 * nft's "Interrupted system call" (a netlink dump interrupted by a concurrent ruleset change) is
 * retried for every nft run the library makes: transactions, listings, feature probes. On a
 * fake runner: the argv and stdin of each attempt are recorded.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  INTERRUPTED_ATTEMPTS,
  NFTables,
  NftError,
  applyTransactions,
  type ExecResult,
  type NftExec,
} from "../../src/nftables/index.js";
import { FakeRunner } from "../../src/process/fake.js";

const EINTR: ExecResult = {
  code: 1,
  stdout: "",
  stderr:
    "/dev/stdin:1:1-40: Error: Could not process rule: Interrupted system call\nreset counter inet t c\n^^^^^\n",
};
const OK: ExecResult = { code: 0, stdout: "", stderr: "" };

/** Answers `failures` interrupted runs, then `then`; `calls()` lists every run with its stdin. */
function flaky(failures: number, then: ExecResult = OK): { runner: FakeRunner; calls: () => string[] } {
  let left = failures;
  const runner = new FakeRunner().on(["nft"], () => (left-- > 0 ? EINTR : then));
  const calls = (): string[] =>
    runner.calls.map((c) => `${c.netns ? `[${c.netns}] ` : ""}${c.argv.join(" ")} <<< ${c.stdin}`);
  return { runner, calls };
}

test("a transaction interrupted twice is sent again, the same text each time, and succeeds", async () => {
  const { runner, calls } = flaky(2);
  const nft = new NFTables({ family: "inet", table: "t", runner });
  const tx = nft.newTransaction();
  tx.add({ kind: "table" });
  tx.reset({ kind: "counter", name: "c" });
  await nft.run(tx);
  assert.deepEqual(calls(), Array(3).fill("nft -f - <<< add table inet t\nreset counter inet t c\n"));
});

test("retries are bounded: an interruption that never ends is an EINTR error naming the operation", async () => {
  const { runner, calls } = flaky(Infinity);
  const nft = new NFTables({ family: "inet", table: "t", runner });
  const tx = nft.newTransaction();
  tx.reset({ kind: "counter", name: "c" });
  await assert.rejects(
    applyTransactions([tx], { runner }),
    (e: unknown) =>
      e instanceof NftError &&
      e.code === "EINTR" &&
      /Interrupted system call \(operation 1: reset counter c\)/.test(e.message),
  );
  assert.equal(calls().length, INTERRUPTED_ATTEMPTS);
});

test("listings retry too, inside the namespace they were asked for", async () => {
  const listing = JSON.stringify({ nftables: [{ metainfo: {} }, { table: { family: "inet", name: "t" } }] });
  const { runner, calls } = flaky(1, { code: 0, stdout: listing, stderr: "" });
  const nft = new NFTables({ family: "inet", table: "t", netns: "/run/netns/x", runner });
  assert.deepEqual(await nft.listCounters(), []);
  assert.deepEqual(calls(), Array(2).fill("[/run/netns/x] nft --json list counters table inet t <<< "));
});

test("other failures are not retried", async () => {
  const runner = new FakeRunner().on(["nft"], { code: 1, stderr: "Error: No such file or directory\n" });
  const nft = new NFTables({ family: "inet", table: "t", runner });
  const tx = nft.newTransaction();
  tx.delete({ kind: "chain", name: "c" });
  await assert.rejects(nft.run(tx), (e: unknown) => e instanceof NftError && e.code === "ENOENT");
  assert.equal(runner.calls.length, 1);
});

test("the retry wraps whatever exec runs nft (libnftables in-process gives the same text)", async () => {
  let left = 1;
  const seen: string[] = [];
  const exec: NftExec = {
    run: (args, stdin, netns) => {
      seen.push(`[${netns ?? ""}] ${args.join(" ")} <<< ${stdin ?? ""}`);
      return Promise.resolve(left-- > 0 ? EINTR : OK);
    },
  };
  const nft = new NFTables({ family: "inet", table: "t", netns: "/run/netns/y", exec });
  await nft.run(nft.newTransaction().add({ kind: "table" }));
  assert.deepEqual(seen, Array(2).fill("[/run/netns/y] -f - <<< add table inet t\n"));
});
