/** The typed `ip -batch` plan run on a fake runner: argv, stdin, and outcomes read by handle. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeRunner } from "../../../src/process/fake.js";
import { IpPlan } from "../../../src/iproute2/plan.js";

test("a plan without tolerant steps stops at the first failure; its text is ip's stdin", async () => {
  const plan = new IpPlan({ netns: "/run/netns/ctr1" });
  plan.run("link set eth0 up");
  const link = plan.show<{ ifname: string }>("link show eth0");
  const runner = new FakeRunner().on(["ip"], { stdout: '[{"ifname":"eth0"}]\n' });
  const out = await plan.execute(runner);
  assert.deepEqual(
    runner.calls.map((c) => [c.argv.join(" "), c.stdin]),
    [["ip -n ctr1 -json -batch -", "link set eth0 up\nlink show eth0\n"]],
  );
  assert.deepEqual(out.shown(link), [{ ifname: "eth0" }]);
});

test("ensure and remove tolerate exists and not found, run -force, and report by handle", async () => {
  const plan = new IpPlan({ details: true });
  const bridge = plan.ensure("link add name br0 type bridge");
  const gone = plan.show<unknown>("addr show dev nope0", "missing");
  const old = plan.remove("link del veth0");
  const veth = plan.show<{ ifname: string }>("link show veth1");
  const runner = new FakeRunner().on(["ip"], {
    code: 1,
    stdout: '[{"ifname":"veth1"}]\n',
    stderr:
      "RTNETLINK answers: File exists\nCommand failed -:1\n" +
      'Device "nope0" does not exist.\nCommand failed -:2\n' +
      'Cannot find device "veth0"\nCommand failed -:3\n',
  });
  const out = await plan.execute(runner);
  assert.equal(runner.calls[0]!.argv.join(" "), "ip -force -json -d -batch -");
  assert.equal(out.changed(bridge), false);
  assert.match(out.failure(old)!.message, /Cannot find device/);
  // The failed show printed nothing: the one output belongs to the show that did not fail.
  assert.deepEqual(out.shown(gone), []);
  assert.deepEqual(out.shown(veth), [{ ifname: "veth1" }]);
});

test("a failure that is not tolerated rejects, naming the command and the namespace", async () => {
  const plan = new IpPlan({ netns: "/proc/42/ns/net" });
  plan.ensure("addr add 10.0.0.1/24 dev br0");
  plan.run("route prepend 0.0.0.0/0 via 10.0.0.1 dev eth1");
  const runner = new FakeRunner().on(() => true, {
    code: 1,
    stderr:
      "RTNETLINK answers: File exists\nCommand failed -:1\nRTNETLINK answers: Network is unreachable\nCommand failed -:2\n",
  });
  await assert.rejects(
    plan.execute(runner),
    /^IpError: `ip route prepend 0\.0\.0\.0\/0 via 10\.0\.0\.1 dev eth1` in \/proc\/42\/ns\/net: RTNETLINK answers: Network is unreachable$/,
  );
  assert.equal(runner.calls[0]!.netns, "/proc/42/ns/net");
});

test("a line break in a command is refused before anything runs; one addr show per plan", () => {
  const plan = new IpPlan();
  assert.throws(() => plan.run("link set eth0 up\nlink del eth1"), /line break/);
  plan.show("addr show dev a");
  assert.throws(() => plan.show("addr show dev b"), /first `addr show` only/);
});
