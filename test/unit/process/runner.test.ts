import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ProcessError,
  SystemRunner,
  argvInNetns,
  exitFailure,
  isProcessError,
  netnsName,
  netnsPath,
  runChecked,
} from "../../../src/process/index.js";
import { FakeRunner, notFound } from "../../../src/process/fake.js";
import { NFTables, NftError } from "../../../src/nftables/index.js";

const real = new SystemRunner();

test("the system runner passes stdin and collects stdout, stderr and the exit status", async () => {
  const done = await real.run({ argv: ["sh", "-c", "cat; echo oops >&2; exit 3"], stdin: "hello\n" });
  assert.deepEqual(done, { stdout: "hello\n", stderr: "oops\n", code: 3 });
});

test("runChecked classifies a non-zero exit with its stderr", async () => {
  await assert.rejects(
    runChecked(real, { argv: ["sh", "-c", "echo 'no such thing' >&2; exit 2"] }),
    (e: unknown) =>
      isProcessError(e, "exit") && e.exitCode === 2 && e.message === "sh exited with 2: no such thing",
  );
  assert.equal((await runChecked(real, { argv: ["true"] })).code, 0);
});

test("a missing program is a not-found failure, whether started directly or by a shell", async () => {
  await assert.rejects(real.run({ argv: ["cni-nft-no-such-program"] }), (e: unknown) =>
    isProcessError(e, "not-found"),
  );
  await assert.rejects(
    runChecked(real, {
      argv: ["sh", "-c", "exec cni-nft-no-such-program"],
      // a PATH directory the user cannot search makes the shell say "Permission denied" (126)
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    }),
    (e: unknown) => isProcessError(e, "not-found"),
  );
});

test("a program that outlives its timeout is killed and reported as a timeout", async () => {
  const done = await real.run({ argv: ["sleep", "30"], timeoutMs: 50 });
  assert.equal(done.timedOut, true);
  assert.equal(done.signal, "SIGKILL");
  assert.equal(exitFailure(["sleep"], done)?.kind, "timeout");
});

test("a signal is a killed failure", async () => {
  await assert.rejects(runChecked(real, { argv: ["sh", "-c", "kill -TERM $$"] }), (e: unknown) =>
    isProcessError(e, "killed"),
  );
});

test("the environment is replaced when given", async () => {
  const done = await real.run({
    argv: ["sh", "-c", 'printf %s "$X"'],
    env: { PATH: process.env["PATH"], X: "y" },
  });
  assert.equal(done.stdout, "y");
});

test("a namespace is a path or a name under /run/netns, entered with nsenter", () => {
  assert.deepEqual(argvInNetns(undefined, ["ip", "link"]), ["ip", "link"]);
  assert.deepEqual(argvInNetns("/proc/1/ns/net", ["ip"]), ["nsenter", "--net=/proc/1/ns/net", "--", "ip"]);
  assert.deepEqual(argvInNetns("c1", ["ip"]), ["nsenter", "--net=/run/netns/c1", "--", "ip"]);
  assert.equal(netnsPath("c1"), "/run/netns/c1");
  assert.throws(() => netnsPath(".."), ProcessError);
  assert.equal(netnsName("/var/run/netns/c1"), "c1");
  assert.equal(netnsName("/run/netns/c1"), "c1");
  assert.equal(netnsName("c1"), "c1");
  assert.equal(netnsName("/proc/1/ns/net"), undefined);
  assert.equal(netnsName(undefined), undefined);
});

test("the fake records argv, stdin and namespace and answers from its script", async () => {
  const fake = new FakeRunner()
    .on(["ip", "-j"], { stdout: "[]" })
    .once(["ip", "-j"], { stdout: "[1]" })
    .on((c) => c.argv[0] === "conntrack", notFound("conntrack"));
  assert.equal((await fake.run({ argv: ["ip", "-j", "link"], netns: "/run/netns/x" })).stdout, "[1]");
  assert.equal((await fake.run({ argv: ["ip", "-j", "addr"], stdin: "x\n" })).stdout, "[]");
  await assert.rejects(fake.run({ argv: ["conntrack", "-D"] }), (e: unknown) =>
    isProcessError(e, "not-found"),
  );
  await assert.rejects(fake.run({ argv: ["nft"] }), /no answer scripted for: nft/);
  assert.deepEqual(fake.commandLines(), ["[/run/netns/x] ip -j link", "ip -j addr", "conntrack -D", "nft"]);
  assert.equal(fake.calls[1]!.stdin, "x\n");
  const lenient = new FakeRunner({ code: 1, stderr: "nope" });
  assert.deepEqual(await lenient.run({ argv: ["x"] }), { stdout: "", stderr: "nope", code: 1 });
});

test("the nftables library runs nft through an injected runner", async () => {
  const fake = new FakeRunner().on(["nft", "-f", "-"], {});
  const nft = new NFTables({ family: "inet", table: "t", netns: "/run/netns/h", runner: fake });
  await nft.run(nft.newTransaction().add({ kind: "table" }));
  assert.deepEqual(fake.calls, [
    { argv: ["nft", "-f", "-"], stdin: "add table inet t\n", netns: "/run/netns/h" },
  ]);
  const missing = new NFTables({ family: "inet", table: "t", runner: new FakeRunner(notFound("nft")) });
  await assert.rejects(
    missing.run(missing.newTransaction().add({ kind: "table" })),
    (e: unknown) => e instanceof NftError && e.code === "ENOEXEC" && isProcessError(e.cause, "not-found"),
  );
});
