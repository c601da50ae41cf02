import { after, test } from "node:test";
import assert from "node:assert/strict";
import { linkGetRequest, routeGetRequest } from "../../src/ffi/rtnetlink.js";
import { haveBun, runBun } from "../helpers/bun.js";
import { NetnsPool, run } from "../helpers/netns.js";

const nets = new NetnsPool();
after(() => nets.destroyAll());

test("the route lookup and link requests are rtmsg/ifinfomsg and RTA_DST as the kernel reads them", () => {
  assert.deepEqual(
    [...routeGetRequest(Uint8Array.of(10, 1, 2, 3))],
    [2, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 1, 0, 10, 1, 2, 3],
  );
  assert.equal(routeGetRequest(new Uint8Array(16))[1], 128);
  assert.deepEqual([...linkGetRequest(0x0102)], [0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
});

test(
  "under Bun, routeDevice names the device `ip route get` names, and none where ip finds no route",
  { skip: !haveBun },
  async () => {
    const ns = await nets.create("rtnl");
    const setup = [
      "ip link set lo up",
      "ip link add rtnl-a type veth peer name rtnl-b",
      "ip link add rtnl-veth0 type veth peer name rtnl-veth1",
      "ip addr add 10.77.0.1/24 dev rtnl-a",
      "ip addr add 10.78.0.1/16 dev rtnl-veth0",
      "ip -6 addr add fd77::1/64 dev rtnl-a nodad",
      "ip link set rtnl-a up",
      "ip link set rtnl-b up",
      "ip link set rtnl-veth0 up",
      "ip link set rtnl-veth1 up",
      "ip route add 192.0.2.0/24 dev rtnl-veth0",
    ].join(" && ");
    const s = await run(ns.argv(["sh", "-c", setup]));
    assert.equal(s.code, 0, s.stderr);
    const addresses = [
      "10.77.0.9",
      "10.78.200.3",
      "192.0.2.77",
      "127.0.0.1",
      "10.77.0.1",
      "fd77::5",
      "10.99.1.1",
    ];
    const r = await runBun("route-probe.ts", addresses, { ns });
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout) as Record<string, string>;
    for (const a of addresses) {
      const ip = await run(ns.argv(["ip", "-j", "route", "get", a]));
      const want = ip.code === 0 ? ((JSON.parse(ip.stdout) as Array<{ dev: string }>)[0]?.dev ?? "-") : "-";
      assert.equal(got[a], want, a);
    }
    assert.equal(got["10.78.200.3"], "rtnl-veth0");
    assert.equal(got["127.0.0.1"], "lo");
    assert.equal(got["10.99.1.1"], "-"); // no default route: unreachable
  },
);
