import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { UPSTREAM_BIN, cniOk } from "../helpers/cni.js";

const nets = new NetnsPool();
let host: Netns, c1: Netns, c2: Netns;
before(async () => {
  await sweepStaleNamespaces();
  [host, c1, c2] = (await Promise.all(["h", "a", "b"].map((t) => nets.create(`lo${t}`)))) as [
    Netns,
    Netns,
    Netns,
  ];
  await c1.sh(["ip", "link", "set", "lo", "down"]);
  await c2.sh(["ip", "link", "set", "lo", "down"]);
});
after(() => nets.destroyAll());

const conf = { cniVersion: "1.0.0", name: "lo", type: "loopback" };

test("loopback: lo up on ADD with the same result as upstream, down on DEL, DEL twice fine", async () => {
  const ours = await cniOk(host, "loopback", "ADD", conf, {
    containerId: "l1",
    netns: c1.path,
    ifname: "lo",
  });
  const theirs = await cniOk(host, "loopback", "ADD", conf, {
    containerId: "l2",
    netns: c2.path,
    ifname: "lo",
    bin: UPSTREAM_BIN,
  });
  const norm = (r: Record<string, unknown>, ns: Netns): string =>
    JSON.stringify(r).replaceAll(ns.path, "NETNS");
  assert.equal(norm(ours, c1), norm(theirs, c2));
  assert.match(await c1.sh(["ip", "link", "show", "lo"]), /UP/);
  await cniOk(
    host,
    "loopback",
    "CHECK",
    { ...conf, prevResult: ours },
    { containerId: "l1", netns: c1.path, ifname: "lo" },
  );
  await cniOk(host, "loopback", "DEL", conf, { containerId: "l1", netns: c1.path, ifname: "lo" });
  await cniOk(host, "loopback", "DEL", conf, { containerId: "l1", netns: "", ifname: "lo" });
  assert.doesNotMatch(await c1.sh(["ip", "link", "show", "lo"]), /<[^>]*\bUP\b/);
});
