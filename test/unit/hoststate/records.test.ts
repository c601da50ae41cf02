/**
 * Per-attachment records (src/hoststate/records.ts) as intent records, without root: the file
 * store's atomic write, what a kill before the rename leaves and who removes it; and for each
 * backend whose layout carries no owner (iptables firewall, firewalld, iptables portmap) that the
 * record is there before the first rule is written, and that DEL without prevResult and GC remove
 * what it names, the record last. test/integration/crash.test.ts proves the same on the kernel.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeHost } from "../../../src/hoststate/fake.js";
import { fileRecords, staleOwners } from "../../../src/hoststate/records.js";
import { nftOwnerHash, type Attachment } from "../../../src/cni/attachment.js";
import { FakeRunner } from "../../../src/process/fake.js";
import { firewallBackends } from "../../../plugins/meta/firewall/backends.js";
import { FirewalldFirewall } from "../../../plugins/meta/firewall/firewall_firewalld.js";
import type { FirewallSpec } from "../../../plugins/meta/firewall/firewall_backend.js";
import { portmapBackends } from "../../../plugins/meta/portmap/backends.js";
import type { PortMapSpec } from "../../../plugins/meta/portmap/config.js";

const A = { network: "net1", containerId: "ctr1", ifname: "eth0" };
const B = { network: "net1", containerId: "ctr2", ifname: "eth0" };
const FW: FirewallSpec = {
  addresses: ["10.88.0.5/32", "fd00::5/128"],
  adminChain: "CNI-ADMIN",
  zone: "trusted",
  ingressPolicy: "open",
  mark: 0x1000,
};
const PM: PortMapSpec = {
  snat: true,
  masqAll: false,
  markMasqBit: 13,
  conditionsV4: [],
  conditionsV6: [],
  mappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
  containers: [{ family: 4, address: "10.88.0.5", subnet: "10.88.0.0/16" }],
};

function withTempDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "cni-nft-records-"));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The record of `a` as every iptables-restore found it: what was there before each write. */
function recordsAtRestore(host: FakeHost, component: string, a: Attachment): unknown[] {
  const restore = host.iptables.restore.bind(host.iptables);
  const seen: unknown[] = [];
  host.iptables.restore = (f, t, lines) => {
    seen.push(host.records(component).read(nftOwnerHash(a)));
    return restore(f, t, lines);
  };
  return seen;
}

const NETNS = "/proc/self/ns/net";

test("file store: write, read, owners, remove; the directory goes with its last record", () =>
  withTempDir((dir) => {
    const records = fileRecords("firewall-iptables", NETNS, dir);
    const [a, b] = [nftOwnerHash(A), nftOwnerHash(B)];
    assert.deepEqual(records.owners(), [], "nothing, and no directory made by reading");
    assert.deepEqual(readdirSync(dir), []);
    records.write(a, { addresses: ["10.88.0.5/32"] });
    records.write(b, { addresses: ["10.88.0.6/32"] });
    assert.deepEqual(records.read(a), { addresses: ["10.88.0.5/32"] });
    assert.deepEqual(records.owners().sort(), [a, b].sort());
    assert.deepEqual(staleOwners(records, "net1", [B]), [a]);
    assert.deepEqual(staleOwners(records, "net2", []), [], "another network's GC leaves them");
    records.remove(a);
    records.remove(a); // gone already: fine
    records.remove(b);
    assert.deepEqual(readdirSync(join(dir, "firewall-iptables")), [], "no empty namespace directory left");
  }));

test("file store: a write killed before its rename leaves a temporary file DEL or GC removes; readers never see it", () =>
  withTempDir((dir) => {
    const records = fileRecords("firewall-iptables", NETNS, dir);
    const [a, b, gone] = [A, B, { ...A, containerId: "gone" }].map(nftOwnerHash);
    records.write(b!, { addresses: ["10.88.0.6/32"] });
    const where = readdirSync(join(dir, "firewall-iptables")).map((d) =>
      join(dir, "firewall-iptables", d),
    )[0]!;
    mkdirSync(join(where, ".tmp"), { recursive: true });
    // What a SIGKILL at the rename leaves: the whole content under the temporary name.
    writeFileSync(join(where, ".tmp", `${a}.4242`), JSON.stringify({ addresses: ["10.88.0.5/32"] }));
    writeFileSync(join(where, ".tmp", `${gone}.4243`), "{");
    assert.equal(records.read(a!), undefined);
    assert.deepEqual(records.owners(), [b]);
    assert.deepEqual(records.unfinished().sort(), [a, gone].sort());
    records.remove(a!);
    assert.equal(existsSync(join(where, ".tmp", `${a}.4242`)), false, "DEL removes its own");
    for (const owner of staleOwners(records, "net1", [B])) records.remove(owner);
    assert.deepEqual(readdirSync(where), [b], "GC removes those of attachments not valid");
  }));

test("iptables firewall: the record exists before the first rule; DEL without prevResult then leaves nothing", async () => {
  const empty = await new FakeHost().dump();
  const host = new FakeHost();
  const [ipt] = firewallBackends(host);
  const seen = recordsAtRestore(host, "firewall-iptables", A);
  await ipt!.setUp(A, FW);
  assert.deepEqual(seen, [{ addresses: FW.addresses }, { addresses: FW.addresses }]);
  await ipt!.remove(A);
  assert.deepEqual(host.records("firewall-iptables").owners(), []);
  // The shared chains stay (as upstream); no accept rule of the container does.
  assert.doesNotMatch(await host.dump(), /10\.88\.0\.5|fd00::5/);
  assert.notEqual(await host.dump(), empty);
});

test("iptables firewall: a repeated ADD with another address records both; DEL removes both", async () => {
  const host = new FakeHost();
  const [ipt] = firewallBackends(host);
  await ipt!.setUp(A, { ...FW, addresses: ["10.88.0.5/32"] });
  await ipt!.setUp(A, { ...FW, addresses: ["10.88.0.9/32"] });
  assert.deepEqual(host.records("firewall-iptables").read(nftOwnerHash(A)), {
    addresses: ["10.88.0.5/32", "10.88.0.9/32"],
  });
  await ipt!.remove(A);
  assert.doesNotMatch(await host.dump(), /10\.88\.0\.[59]/);
});

test("iptables firewall: a record that is not an address is refused, not written to iptables", async () => {
  const host = new FakeHost();
  const [ipt] = firewallBackends(host);
  host.records("firewall-iptables").write(nftOwnerHash(A), { addresses: ["10.88.0.5/32 -j DROP"] });
  await assert.rejects(ipt!.remove(A));
  assert.equal(host.iptables.restores.length, 0);
});

test("iptables portmap: the record exists before the chain; GC of a network removes what records name", async () => {
  const host = new FakeHost();
  const [pm] = portmapBackends(host);
  const seen = recordsAtRestore(host, "portmap-iptables", A);
  await pm!.setUp(A, PM);
  const record = {
    chain: "CNI-DN-85373d34c6846b6c53ee2",
    del: {
      "4": [
        String.raw`-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"net1\" id: \"ctr1\"" -m multiport --dports 8080 -j CNI-DN-85373d34c6846b6c53ee2`,
      ],
    },
    udpPorts: [],
  };
  assert.deepEqual(seen, [record]);
  // The entry rule (with its comment) is lost: only the record still names the chain.
  await host.iptables.restore(4, "nat", ["-F CNI-HOSTPORT-DNAT"]);
  await pm!.gc("net1", []);
  assert.doesNotMatch(await host.dump(), /CNI-DN-/);
  assert.deepEqual(host.records("portmap-iptables").owners(), []);
});

test("firewalld: the record exists before addSource; DEL without prevResult removes the recorded sources", async () => {
  const host = new FakeHost();
  const runner = new FakeRunner();
  const calls: string[] = [];
  runner.on(["dbus-send"], (cmd) => {
    const method = cmd.argv.find((a) => a.startsWith("org.") && /\.\w+$/.test(a) && !a.startsWith("--"))!;
    const what = `${method.split(".").pop()} ${cmd.argv.slice(-1)[0]}`;
    calls.push(
      `${what} record=${JSON.stringify(host.records("firewall-firewalld").read(nftOwnerHash(A)) ?? null)}`,
    );
    return { stdout: 'method return\n   string ":1.1"\n' };
  });
  const fwd = new FirewalldFirewall(runner, () => true, host.records("firewall-firewalld"));
  await fwd.setUp(A, { ...FW, addresses: ["10.88.0.5/32"], zone: "internal" });
  await fwd.remove(A);
  await fwd.gc("net1", []);
  const record = `{"addresses":["10.88.0.5/32"],"zone":"internal"}`;
  assert.deepEqual(calls, [
    `GetNameOwner string:org.fedoraproject.FirewallD1 record=null`,
    `addSource string:10.88.0.5/32 record=${record}`,
    `GetNameOwner string:org.fedoraproject.FirewallD1 record=${record}`,
    `removeSource string:10.88.0.5/32 record=${record}`,
  ]);
  assert.deepEqual(
    host.records("firewall-firewalld").owners(),
    [],
    "the record is gone; GC without records asks nothing",
  );
});

test("firewalld: GC removes the sources of attachments not valid, and only those", async () => {
  const host = new FakeHost();
  const runner = new FakeRunner();
  const removed: string[] = [];
  runner.on(["dbus-send"], (cmd) => {
    if (cmd.argv.some((a) => a.endsWith(".removeSource"))) removed.push(cmd.argv.slice(-2).join(" "));
    return { stdout: "method return\n" };
  });
  const fwd = new FirewalldFirewall(runner, () => true, host.records("firewall-firewalld"));
  await fwd.setUp(A, { ...FW, addresses: ["10.88.0.5/32"] });
  await fwd.setUp(B, { ...FW, addresses: ["10.88.0.6/32"] });
  await fwd.gc("net1", [B]);
  assert.deepEqual(removed, ["string:trusted string:10.88.0.5/32"]);
  assert.deepEqual(
    [...host.records("firewall-firewalld").files.values()],
    ['{"addresses":["10.88.0.6/32"],"zone":"trusted"}'],
  );
});

test("file records: notes of use of a shared object; release says whether any other is left, and the directories go with the last", () => {
  const root = mkdtempSync(join(tmpdir(), "records-uses-"));
  try {
    const r = fileRecords("masquerade", "/proc/self/ns/net", root);
    const [a, b] = [nftOwnerHash(A), nftOwnerHash(B)];
    r.use("masq4-15f04f2f13e6", a);
    r.use("masq4-15f04f2f13e6", b);
    r.use("masq6-ef330fd8e3d4", a);
    r.write(a, { elements: [] });
    assert.deepEqual(r.owners(), [a]);
    assert.deepEqual(
      r.uses().sort(),
      [
        ["masq4-15f04f2f13e6", a],
        ["masq4-15f04f2f13e6", b],
        ["masq6-ef330fd8e3d4", a],
      ].sort(),
    );
    assert.equal(r.release("masq4-15f04f2f13e6", a), false);
    assert.equal(r.release("masq6-ef330fd8e3d4", a), true);
    // Never noted (a host upgraded while containers run): true, the kernel decides.
    assert.equal(r.release("masq4-000000000000", a), true);
    assert.equal(r.release("masq4-15f04f2f13e6", b), true);
    r.remove(a);
    assert.deepEqual(readdirSync(join(root, "masquerade")), []);
    assert.throws(() => r.use("../x", a), /not a shared object's name/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
