/**
 * accountUdp (test/helpers/flow-meter.ts) places each datagram a UDP flow's client did not get
 * back on the segment between the two hops that counted it differently: only the host's own
 * segments count as the host's (what a migration changes); the machine's drops are summed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { accountUdp, type HopCounts, type MachineDrops } from "../helpers/flow-meter.js";

const hops = (n: number, less: Partial<HopCounts> = {}): HopCounts => ({
  client_sent: n,
  host_in: n,
  host_out: n,
  server_got: n,
  server_sent: n,
  host_reply_in: n,
  host_reply_out: n,
  client_got: n,
  ...less,
});
const drops = (backlog = 0, links = 0, udp = 0): MachineDrops => ({ backlog, links, udp });
const start = { hops: hops(10), drops: drops(5, 1, 0) };

test("nothing lost: nothing placed", () => {
  const a = accountUdp(start, { hops: hops(110), drops: drops(5, 1, 0) }, 100, 100);
  assert.deepEqual([a.inHost, a.lost, a.machineDrops], [0, 0, 0]);
  assert.match(a.text, /^0 of 100 not echoed: none missing on any hop/);
});

test("a reply missing between the host's first and last hook is the host's", () => {
  const after = { hops: hops(110, { host_reply_out: 109, client_got: 109 }), drops: drops(5, 1, 0) };
  const a = accountUdp(start, after, 100, 99);
  assert.deepEqual([a.inHost, a.lost, a.machineDrops], [1, 1, 0]);
  assert.match(a.text, /1 in the host, reply/);
});

test("a request missing on the link into the host, with backlog drops counted, is the machine's", () => {
  const rest = { host_in: 108, host_out: 108, server_got: 108, server_sent: 108 };
  const after = {
    hops: hops(110, { ...rest, host_reply_in: 108, host_reply_out: 108, client_got: 108 }),
    drops: drops(9, 1, 0),
  };
  const a = accountUdp(start, after, 100, 98);
  assert.deepEqual([a.inHost, a.lost, a.machineDrops], [0, 2, 4]);
  assert.match(a.text, /2 on the link into the host/);
});

test("an echo the client's socket never delivered is placed there", () => {
  const a = accountUdp(start, { hops: hops(110), drops: drops(5, 1, 1) }, 100, 99);
  assert.deepEqual([a.inHost, a.lost, a.machineDrops], [0, 1, 1]);
  assert.match(a.text, /1 in the client's socket/);
});
