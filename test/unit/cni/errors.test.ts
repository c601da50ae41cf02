import { test } from "node:test";
import assert from "node:assert/strict";
import {
  CniError,
  ErrorCode,
  PREV_RESULT_MISSING,
  TeardownError,
  causeChain,
  pluginNotAvailable,
  requirePrevResult,
  runTeardown,
} from "../../../src/cni/index.js";
import { classifyMessage } from "../../../src/process/index.js";

test("a missing prevResult is refused with one code and one message", () => {
  assert.throws(
    () => requirePrevResult({}),
    (e: unknown) =>
      e instanceof CniError && e.code === ErrorCode.InvalidNetworkConfig && e.message === PREV_RESULT_MISSING,
  );
  const prev = { cniVersion: "1.1.0" };
  assert.equal(requirePrevResult({ prevResult: prev }), prev);
});

test("wrap adds context, keeps the code and chains the cause", () => {
  const tool = new Error("RTNETLINK answers: File exists");
  const e = CniError.wrap("adding route", CniError.wrap("ip batch", tool));
  assert.equal(e.code, ErrorCode.Internal);
  assert.equal(e.message, "adding route: ip batch: RTNETLINK answers: File exists");
  assert.deepEqual(causeChain(e), [
    "adding route: ip batch: RTNETLINK answers: File exists",
    "ip batch: RTNETLINK answers: File exists",
    "RTNETLINK answers: File exists",
  ]);
  assert.equal(CniError.wrap("x", new CniError(ErrorCode.TryAgainLater, "locked")).code, 11);
  assert.equal(pluginNotAvailable(["nft", "ip"]).code, ErrorCode.PluginNotAvailable);
  assert.equal(pluginNotAvailable(["nft", "ip"]).message, "plugin not available: nft, ip not found in PATH");
});

test("teardown runs every step and reports every failure", async () => {
  const ran: string[] = [];
  const step = (what: string, fail?: Error) => ({
    what,
    run: () => {
      ran.push(what);
      if (fail) throw fail;
    },
  });
  await runTeardown([step("a"), step("b")]);
  assert.deepEqual(ran, ["a", "b"]);
  ran.length = 0;
  await assert.rejects(
    runTeardown([
      step("link", new CniError(ErrorCode.IOFailure, "gone wrong")),
      step("ipam"),
      step("rules", new Error("nft: busy")),
    ]),
    (e: unknown) =>
      e instanceof TeardownError &&
      e.code === ErrorCode.IOFailure &&
      e.message === "2 cleanup steps failed: link: gone wrong; rules: nft: busy" &&
      e.failures.length === 2,
  );
  assert.deepEqual(ran, ["link", "ipam", "rules"]);
  await assert.rejects(
    runTeardown([step("one", new CniError(ErrorCode.TryAgainLater, "locked"))]),
    (e: unknown) => e instanceof CniError && e.code === 11 && e.message === "locked",
  );
});

test("teardown atOnce starts every step before any ends and reports failures in the steps' order", async () => {
  const started: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const step = (what: string, fail?: Error) => ({
    what,
    run: async () => {
      started.push(what);
      await gate;
      if (fail) throw fail;
    },
  });
  const done = runTeardown(
    [step("link", new Error("slow kernel")), step("ipam"), step("rules", new Error("nft: busy"))],
    { atOnce: true },
  );
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(started, ["link", "ipam", "rules"]); // all running while the first still waits
  release();
  await assert.rejects(
    done,
    (e: unknown) =>
      e instanceof TeardownError &&
      e.message === "2 cleanup steps failed: link: slow kernel; rules: nft: busy",
  );
});

test("tool messages are classified in one place", () => {
  assert.equal(classifyMessage("RTNETLINK answers: File exists"), "exists");
  assert.equal(classifyMessage("Error: ipv4: Address already assigned."), "exists");
  assert.equal(classifyMessage("iptables: Chain already exists."), "exists");
  assert.equal(classifyMessage('Cannot find device "eth9"'), "not-found");
  assert.equal(classifyMessage("Error: No such file or directory"), "not-found");
  assert.equal(classifyMessage("nsenter: cannot open /run/netns/x: No such file or directory"), "netns-gone");
  assert.equal(classifyMessage('Cannot open network namespace "x": No such file or directory'), "netns-gone");
  assert.equal(classifyMessage("Error: Unknown device type."), "unsupported");
  assert.equal(classifyMessage("Error: syntax error"), undefined);
});
