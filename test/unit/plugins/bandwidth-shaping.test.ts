/** The bandwidth plugin's tc lines and upstream's arithmetic, compared literally (no root needed). */
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  expectedTbf,
  redirectCommands,
  shapingCommands,
  tickInUsec,
} from "../../../plugins/meta/bandwidth/shaping.js";
import { ifbName } from "../../../plugins/meta/bandwidth/bandwidth.js";

test("tbf with upstream's latency, rate in bytes per second", () => {
  assert.deepEqual(
    shapingCommands("veth0", { rate: 8_000_000, burst: 800_000 }, { subnets: [], exclude: false }, "src"),
    ["qdisc add dev veth0 root handle 1: tbf rate 1000000bps burst 100000 latency 25ms"],
  );
});

test("subnets make an htb with a shaped and an unshaped class", () => {
  const lim = { rate: 4_000_000, burst: 64_000 };
  assert.deepEqual(
    shapingCommands("bwp1", lim, { subnets: ["10.1.2.3/16", "fd00::1/64"], exclude: true }, "dst"),
    [
      "qdisc add dev bwp1 root handle 1: htb default 30",
      "class add dev bwp1 parent 1: classid 1:30 htb rate 500000bps ceil 500000bps burst 8000 cburst 8000",
      "class add dev bwp1 parent 1: classid 1:1 htb rate 100gbit ceil 100gbit",
      "filter add dev bwp1 parent 1: protocol ip prio 16 u32 match ip dst 10.1.0.0/16 flowid 1:1",
      "filter add dev bwp1 parent 1: protocol ipv6 prio 15 u32 match ip6 dst fd00::/64 flowid 1:1",
    ],
  );
  assert.deepEqual(
    shapingCommands("v", lim, { subnets: ["10.0.0.0/8"], exclude: false }, "src").slice(0, 1),
    ["qdisc add dev v root handle 1: htb default 1"],
  );
  assert.match(
    shapingCommands("v", lim, { subnets: ["10.0.0.0/8"], exclude: false }, "src")[3]!,
    /src 10.0.0.0\/8 flowid 1:30$/,
  );
});

test("redirect to the ifb, and the numbers upstream's CHECK compares", () => {
  assert.deepEqual(redirectCommands("veth0", "bwpx"), [
    "qdisc add dev veth0 handle ffff: ingress",
    "filter add dev veth0 parent ffff: protocol all prio 1 u32 match u32 0 0 flowid 1:1 action mirred egress redirect dev bwpx",
  ]);
  const tick = tickInUsec("000003e8 00000040 000f4240 3b9aca00");
  assert.equal(tick, 15.625);
  // Measured on this kernel for upstream's ADD of 8 Mbit/s, 800 kbit burst: rate, limit, burst_raw 0x17d784.
  assert.deepEqual(expectedTbf({ rate: 8_000_000, burst: 800_000 }, tick), {
    rate: 1_000_000,
    limit: 125_000,
    buffer: 0x17d784,
  });
  assert.equal(ifbName("bwnet", "ctr1"), "bwpea62040b30ca"); // upstream's name for the same pair
});
