/**
 * The MAC spoof check in its own table on the kernel, with real frames: a container's frames
 * with another source MAC are dropped and its own pass, alone and beside 300 other checks; a
 * repeated ADD leaves one copy and still drops; DEL lets anything through again and leaves the
 * others' elements whole. Then mixing with upstream 1.1.1's bridge (`macspoofchk`, table
 * `bridge nat`): our CHECK and DEL of a check upstream added. test/unit/plugins/spoofcheck.test.ts
 * has the same steps against the fake with literal dumps.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, link, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { echo, startEchoServer, type EchoServer } from "../helpers/echo.js";
import { UPSTREAM_BIN, cniOk, tempDir } from "../helpers/cni.js";
import { systemHost } from "../../src/hoststate/index.js";
import { checkVethState, removeVethState, setUpVethState } from "../../src/link/veth_state.js";
import { declareSpoofSkeleton, spoofElements, SPOOF_TABLE } from "../../src/link/spoofcheck.js";
import { ownerElement } from "../../src/hoststate/nft_owners.js";
import { nftOwnerHash } from "../../src/cni/attachment.js";
import { NFTables } from "../../src/nftables/index.js";

before(sweepStaleNamespaces);

const MAC = "0a:58:0a:3d:00:02";
const OTHERS = 300;

describe("spoof check on the kernel: real frames at 0 and 300 other checks", () => {
  const nets = new NetnsPool();
  let host: Netns;
  let ctr: Netns;
  let server: EchoServer;
  before(async () => {
    [host, ctr] = await Promise.all([nets.create("sfh"), nets.create("sfc")]);
    await host.sh(["ip", "link", "add", "sfbr0", "type", "bridge"]);
    await host.sh(["ip", "addr", "add", "10.61.0.1/24", "dev", "sfbr0"]);
    await host.sh(["ip", "link", "set", "sfbr0", "up"]);
    await link(host, "sfv0", ctr, "eth0");
    await host.sh(["ip", "link", "set", "sfv0", "master", "sfbr0"]);
    await ctr.sh(["ip", "link", "set", "eth0", "address", MAC]);
    await ctr.sh(["ip", "addr", "add", "10.61.0.2/24", "dev", "eth0"]);
    server = await startEchoServer(host, "tcp", "0.0.0.0", 9300);
  });
  after(async () => {
    server?.stop();
    await nets.destroyAll();
  });

  /** Whether a frame with another source MAC gets from the container to the host. */
  const spoofedGetsThrough = async (): Promise<boolean> => {
    await ctr.sh(["ip", "link", "set", "eth0", "address", "02:00:00:00:be:ef"]);
    await host.sh(["ip", "neigh", "flush", "dev", "sfbr0"]);
    const through = (await echo(ctr, "tcp", "10.61.0.1", 9300, 1500)) !== undefined;
    await ctr.sh(["ip", "link", "set", "eth0", "address", MAC]);
    await Promise.all([
      host.sh(["ip", "neigh", "flush", "dev", "sfbr0"]),
      ctr.sh(["ip", "neigh", "flush", "dev", "eth0"]),
    ]);
    assert.ok(await echo(ctr, "tcp", "10.61.0.1", 9300), "its own MAC gets through");
    return through;
  };

  const elements = async (): Promise<string[]> =>
    (await host.sh(["nft", "list", "table", "bridge", "cni_nft_spoofcheck"]))
      .split("\n")
      .filter((l) => l.includes("comment") && l.includes("id: "));

  for (const others of [0, OTHERS]) {
    test(`${others} other checks: spoofed frames dropped, the real MAC passes; a repeat is one copy; DEL lets all through`, async () => {
      const h = systemHost({ netns: host.path });
      await fillOthers(host, others);
      const a = { network: "sfnet", containerId: `measured${others}`, ifname: "eth0" };
      const plan = { ipMasq: false, addresses: [], spoof: { hostVeth: "sfv0", mac: MAC } };
      assert.equal(await spoofedGetsThrough(), true, "no check yet");
      await setUpVethState(h, a, plan);
      assert.equal(await spoofedGetsThrough(), false, "the check drops another source MAC");
      const once = await elements();
      await setUpVethState(h, a, plan);
      assert.deepEqual(await elements(), once, "a repeated ADD leaves one copy");
      assert.equal(await spoofedGetsThrough(), false, "and still drops");
      assert.deepEqual(await checkVethState(h, a, plan), []);
      // Never upstream's table: no chain per container, no jump.
      assert.equal((await host.run(["nft", "list", "table", "bridge", "nat"])).code, 1);

      await removeVethState(h, a, { ipMasq: false, spoof: true });
      assert.equal(await spoofedGetsThrough(), true, "DEL removed the check");
      const left = await elements();
      assert.equal(left.filter((l) => l.includes(`id: ${a.containerId}`)).length, 0);
      // Each other check: its two elements and their two owner elements.
      assert.equal(left.length, 4 * others);
      await removeVethState(h, a, { ipMasq: false, spoof: true });
      assert.deepEqual(await elements(), left, "a DEL again changes nothing");
      await host.sh(["nft", "delete", "table", "bridge", "cni_nft_spoofcheck"]);
    });
  }
});

/** `n` other attachments' checks as their ADDs write them, in one nft run (their veths need not exist). */
async function fillOthers(host: Netns, n: number): Promise<void> {
  if (n === 0) return;
  const nft = new NFTables({ family: "bridge", table: SPOOF_TABLE, netns: host.path });
  const tx = nft.newTransaction();
  declareSpoofSkeleton(tx);
  for (let i = 0; i < n; i++) {
    const o = { network: "sfnet", containerId: `other${i}`, ifname: "eth0" };
    const mac = `0a:58:0a:3e:${((i >> 8) & 0xff).toString(16).padStart(2, "0")}:${(i & 0xff).toString(16).padStart(2, "0")}`;
    for (const e of spoofElements(o, { hostVeth: `sfo${i}`, mac }))
      tx.add(e).add(ownerElement(e, nftOwnerHash(o), e.comment));
  }
  await nft.run(tx);
}

describe("spoof check mixed with upstream 1.1.1's bridge", () => {
  const nets = new NetnsPool();
  const dir = tempDir("sf-mix");
  let host: Netns;
  let ctr: Netns;
  before(async () => {
    [host, ctr] = await Promise.all([nets.create("sfmh"), nets.create("sfmc")]);
  });
  after(async () => {
    await nets.destroyAll();
    dir.remove();
  });

  const conf = {
    cniVersion: "1.0.0",
    name: "sfmix",
    type: "bridge",
    bridge: "sfmbr0",
    isGateway: true,
    macspoofchk: true,
    ipam: { type: "host-local", dataDir: dir.path, ranges: [[{ subnet: "10.62.0.0/24" }]] },
  };

  test("ADD by upstream: our CHECK passes and our DEL (no record of ours) removes its chains and jump", async () => {
    const call = { containerId: "sfmix-up", netns: ctr.path, path: UPSTREAM_BIN };
    const r = await cniOk(host, "bridge", "ADD", conf, { ...call, bin: UPSTREAM_BIN });
    const chains = await host.sh(["nft", "list", "table", "bridge", "nat"]);
    assert.match(chains, /cni-br-iface-sfmix-up-eth0-mac/);
    await cniOk(host, "bridge", "CHECK", { ...conf, prevResult: r }, call);
    await cniOk(host, "bridge", "DEL", { ...conf, prevResult: r }, call);
    const after = await host.sh(["nft", "list", "table", "bridge", "nat"]);
    assert.doesNotMatch(after, /sfmix-up/);
    // The base chain stays, as upstream leaves it (its ADD counts on it between its two runs).
    assert.match(after, /chain PREROUTING/);
  });
});
