/** sbr's plan from what a namespace shows, compared literally. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { nextFreeTable, planRoutes, rulesToDelete } from "../../../plugins/meta/sbr/routing.js";

test("a table per address, routes copied, the main table tidied", () => {
  const plan = planRoutes({
    ifname: "net1",
    ips: [{ address: "192.168.1.5/24", gateway: "192.168.1.1" }],
    rules: [{ table: "local" }, { src: "1.2.3.4", table: "100" }, { table: "main" }],
    routes: {
      v4: [
        { dst: "172.16.0.0/16", gateway: "192.168.1.1", dev: "net1" },
        { dst: "192.168.1.0/24", dev: "net1", protocol: "kernel", scope: "link", prefsrc: "192.168.1.5" },
      ],
      v6: [],
    },
    gateways: {},
    addSourceHints: false,
  });
  assert.deepEqual(plan.commands, [
    "rule add from 192.168.1.5/32 table 101",
    "route add 0.0.0.0/0 via 192.168.1.1 dev net1 table 101",
    "route replace 172.16.0.0/16 via 192.168.1.1 dev net1 table 101",
    "route replace 192.168.1.0/24 dev net1 proto kernel scope link src 192.168.1.5 table 101",
    "route del 172.16.0.0/16 via 192.168.1.1 dev net1 table main",
    "route del 192.168.1.0/24 dev net1 proto kernel scope link src 192.168.1.5 table main",
  ]);
  assert.deepEqual(plan.undo, ["rule del from 192.168.1.5/32 table 101", "route flush table 101"]);
});

test("free tables skip used ones and main; DEL finds rules by source", () => {
  assert.equal(nextFreeTable([{ table: "100" }, { table: "101" }], 100), 102);
  assert.equal(nextFreeTable([], 254), 255);
  assert.deepEqual(
    rulesToDelete(
      [
        { src: "all", table: "main" },
        { priority: 32765, src: "192.168.1.5", table: "100" },
        { src: "10.9.9.9", table: "7" },
      ],
      ["192.168.1.5"],
    ),
    ["rule del from 192.168.1.5/32 table 100 priority 32765"],
  );
});
