import { test } from "node:test";
import assert from "node:assert/strict";
import { duplicateSysctlKey } from "../../plugins/meta/tuning/tuning.js";

test("a key repeated in the top-level sysctl object is found in the raw config", async () => {
  const dup = '{"type":"tuning","sysctl":{"net.ipv4.conf.eth0.x":"1","a\\u002eb":"2","a.b":"3"}}';
  assert.equal(await duplicateSysctlKey(dup), "a.b");
  assert.equal(await duplicateSysctlKey('{"sysctl":{"a":"1","b":"2"},"other":{"a":1,"a":2}}'), undefined);
  assert.equal(await duplicateSysctlKey('{"nested":{"sysctl":{"a":"1","a":"2"}},"sysctl":{}}'), undefined);
  assert.equal(await duplicateSysctlKey('{"name":"n","sysctl":{"x":"\\"}\\"","x":"2"}}'), "x");
  assert.equal(await duplicateSysctlKey("[]"), undefined);
  // the key itself escaped: still scanned
  assert.equal(await duplicateSysctlKey('{"sys\\u0063tl":{"a":"1","a":"2"}}'), "a");
  assert.equal(await duplicateSysctlKey('{"type":"tuning","mtu":1400}'), undefined);
});
