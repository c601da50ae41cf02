/** Route lines from an IPAM result: non-exclusive (`prepend`), as upstream adds them; values checked. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { routeCommands } from "../../../src/iproute2/route.js";

const ips = [
  { address: "10.1.0.5/24", gateway: "10.1.0.1" },
  { address: "fd01::5/64", gateway: "fd01::1" },
];

test("routes without gw take the first gateway of their family; fields become ip options", () => {
  assert.deepEqual(
    routeCommands(
      "net1",
      [
        { dst: "0.0.0.0/0" },
        { dst: "::/0" },
        { dst: "192.168.0.0/16", gw: "10.1.0.254", priority: 100, table: 20, scope: 0, mtu: 1400 },
      ],
      ips,
    ),
    [
      "route prepend 0.0.0.0/0 via 10.1.0.1 dev net1",
      "route prepend ::/0 via fd01::1 dev net1",
      "route prepend 192.168.0.0/16 via 10.1.0.254 dev net1 metric 100 table 20 scope 0 mtu 1400",
    ],
  );
  assert.deepEqual(routeCommands("eth0", [{ dst: "fd02::/64" }], [{ address: "10.1.0.5/24" }]), [
    "route prepend fd02::/64 dev eth0",
  ]);
});

test("a route value that is not an address, a CIDR or a number is refused, naming the field", () => {
  for (const [route, field] of [
    [{ dst: "0.0.0.0/0 table 5" }, "dst"],
    [{ dst: "10.1" }, "dst"],
    [{ dst: "10.0.0.0/33" }, "dst"],
    [{ dst: "0.0.0.0/0", gw: "fd01::1" }, "gw"],
    [{ dst: "0.0.0.0/0", gw: "10.1.0.1 dev lo" }, "gw"],
    [{ dst: "0.0.0.0/0", priority: -1 }, "priority"],
    [{ dst: "0.0.0.0/0", scope: 256 }, "scope"],
    [{ dst: "0.0.0.0/0", table: 1.5 }, "table"],
  ] as const)
    assert.throws(() => routeCommands("eth0", [route], ips), new RegExp(`invalid route ${field}`));
});
