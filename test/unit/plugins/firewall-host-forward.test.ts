/**
 * hostForward without root: the accept each firewall backend puts into the host's own dropping
 * forward path (an operator's nftables chain, iptables CNI-FORWARD), compared with literal text;
 * kept while the network has a container, gone with its last one (DEL or GC).
 * test/integration/firewall-host-forward.test.ts proves the same with real packets.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeHost } from "../../../src/hoststate/fake.js";
import { firewallBackends } from "../../../plugins/meta/firewall/backends.js";
import type { FirewallSpec, HostForward } from "../../../plugins/meta/firewall/firewall_backend.js";
import { CniError } from "../../../src/cni/index.js";

const A = { network: "net1", containerId: "ctr1", ifname: "eth0" };
const B = { network: "net1", containerId: "ctr2", ifname: "eth0" };
const spec = (addresses: string[]): FirewallSpec => ({
  addresses,
  adminChain: "CNI-ADMIN",
  zone: "trusted",
  ingressPolicy: "open",
  mark: 0x1000,
});
const SPEC_A = spec(["10.88.0.5/32", "fd00::5/128"]);
const SPEC_B = spec(["10.88.0.6/32"]);
const BOTH: HostForward = { nftables: { family: "inet", table: "hostfw", chain: "forward" }, iptables: true };

async function hostWithFirewall(): Promise<FakeHost> {
  const host = new FakeHost();
  const hf = host.nft("inet", "hostfw");
  await hf.run(
    hf
      .newTransaction()
      .add({ kind: "table" })
      .add({
        kind: "chain",
        name: "forward",
        type: "filter",
        hook: "forward",
        priority: "filter",
        policy: "drop",
      })
      .add({ kind: "rule", chain: "forward", rule: "ct state invalid drop" }),
  );
  return host;
}

const HOSTFW_EMPTY = `add table inet hostfw
add chain inet hostfw forward { type filter hook forward priority 0 ; policy drop ; }
add rule inet hostfw forward ct state invalid drop
`;
const HOSTFW_MARK = `add table inet hostfw
add chain inet hostfw forward { type filter hook forward priority 0 ; policy drop ; }
add rule inet hostfw forward meta mark & 0x00001000 == 0x00001000 accept comment "8e48f37d5de60467, hostForward mark 0x00001000, net: net1"
add rule inet hostfw forward ct state invalid drop
`;
const FILTER_MARK = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CNI-FORWARD - [0:0]
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
-A CNI-FORWARD -m mark --mark 0x1000/0x1000 -m comment --comment "8e48f37d5de60467, hostForward mark 0x00001000, net: net1" -j ACCEPT
COMMIT
`;
const FILTER_MARK_GONE = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:CNI-FORWARD - [0:0]
-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
COMMIT
`;
const HOSTFW_ADDRESSES = `add table inet hostfw
add chain inet hostfw forward { type filter hook forward priority 0 ; policy drop ; }
add rule inet hostfw forward ip saddr 10.88.0.6 accept comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2"
add rule inet hostfw forward ip daddr 10.88.0.6 ct state established,related accept comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2"
add rule inet hostfw forward ip6 saddr fd00::5 accept comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1"
add rule inet hostfw forward ip6 daddr fd00::5 ct state established,related accept comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1"
add rule inet hostfw forward ip saddr 10.88.0.5 accept comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1"
add rule inet hostfw forward ip daddr 10.88.0.5 ct state established,related accept comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1"
add rule inet hostfw forward ct state invalid drop
`;
const HOSTFW_ADDRESSES_B = `add table inet hostfw
add chain inet hostfw forward { type filter hook forward priority 0 ; policy drop ; }
add rule inet hostfw forward ip saddr 10.88.0.6 accept comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2"
add rule inet hostfw forward ip daddr 10.88.0.6 ct state established,related accept comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2"
add rule inet hostfw forward ct state invalid drop
`;

test("hostForward, nftables backend: one mark accept per network in each host path; the last DEL removes it", async () => {
  const host = await hostWithFirewall();
  const b = firewallBackends(host, BOTH).find((x) => x.name === "nftables")!;
  await b.setUp(A, SPEC_A);
  await b.setUp(B, SPEC_B);
  await b.setUp(B, SPEC_B);
  assert.equal(await host.nft("inet", "hostfw").dump(), HOSTFW_MARK);
  assert.equal(host.iptables.saveText(4, "filter"), FILTER_MARK);
  assert.equal(host.iptables.saveText(6, "filter"), FILTER_MARK);
  assert.deepEqual(await b.check(A, SPEC_A), []);

  await b.remove(A);
  assert.equal(await host.nft("inet", "hostfw").dump(), HOSTFW_MARK, "B still needs it");
  await b.remove(B);
  assert.equal(await host.nft("inet", "hostfw").dump(), HOSTFW_EMPTY);
  assert.equal(host.iptables.saveText(4, "filter"), FILTER_MARK_GONE);
  await b.remove(B);
  assert.equal(await host.nft("inet", "hostfw").dump(), HOSTFW_EMPTY);
});

test("hostForward, nftables backend: GC of a network with no valid attachment removes the accept", async () => {
  const host = await hostWithFirewall();
  const b = firewallBackends(host, BOTH).find((x) => x.name === "nftables")!;
  await b.setUp(A, SPEC_A);
  await b.gc("net1", [A]);
  assert.equal(await host.nft("inet", "hostfw").dump(), HOSTFW_MARK);
  await b.gc("net1", []);
  assert.equal(await host.nft("inet", "hostfw").dump(), HOSTFW_EMPTY);
  assert.equal(host.iptables.saveText(4, "filter"), FILTER_MARK_GONE);
});

test("hostForward, nftables backend: CHECK names the missing accept; ADD repairs it; a new mark replaces it", async () => {
  const host = await hostWithFirewall();
  const b = firewallBackends(host, BOTH).find((x) => x.name === "nftables")!;
  await b.setUp(A, SPEC_A);
  const hf = host.nft("inet", "hostfw");
  const handle = (await hf.listRules("forward"))[0]!.handle!;
  await hf.run(hf.newTransaction().delete({ kind: "rule", chain: "forward", rule: "", handle }));
  await host.iptables.restore(6, "filter", [FILTER_MARK.split("\n")[6]!.replace(/^-A/, "-D")]);
  assert.deepEqual(await b.check(A, SPEC_A), [
    "hostForward: the accept of mark 0x00001000 in chain inet hostfw forward",
    `hostForward: ip6tables rule ${FILTER_MARK.split("\n")[6]!}`,
  ]);
  await b.setUp(A, SPEC_A);
  assert.deepEqual(await b.check(A, SPEC_A), []);
  assert.equal(await hf.dump(), HOSTFW_MARK);
  await b.setUp(A, { ...SPEC_A, mark: 0x4000 });
  assert.match(
    await hf.dump(),
    /accept comment "8e48f37d5de60467, hostForward mark 0x00004000, net: net1"\n/,
  );
  assert.doesNotMatch(await hf.dump(), /0x00001000/);
  assert.doesNotMatch(host.iptables.saveText(4, "filter"), /0x1000/);
});

test("hostForward: a host chain that is not there fails ADD with code 7 and changes nothing", async () => {
  for (const name of ["nftables", "iptables"] as const) {
    const host = new FakeHost();
    const b = firewallBackends(host, BOTH).find((x) => x.name === name)!;
    await assert.rejects(
      b.setUp(A, SPEC_A),
      (e: unknown) =>
        e instanceof CniError &&
        e.code === 7 &&
        /hostForward\.nftables: chain inet hostfw forward/.test(e.message),
    );
    assert.equal(await host.dump(), "");
  }
});

test("hostForward, iptables backend: the attachment's address accepts in the host chain, by owner; GC", async () => {
  const host = await hostWithFirewall();
  const b = firewallBackends(host, BOTH).find((x) => x.name === "iptables")!;
  await b.setUp(A, SPEC_A);
  await b.setUp(B, SPEC_B);
  await b.setUp(B, SPEC_B);
  assert.equal(await host.nft("inet", "hostfw").dump(), HOSTFW_ADDRESSES);
  // Against iptables FORWARD DROP its rules need nothing more: no mark rule in CNI-FORWARD.
  assert.doesNotMatch(host.iptables.saveText(4, "filter"), /hostForward/);
  assert.deepEqual(await b.check(A, SPEC_A), []);
  // DEL without prevResult: the host chain's rules carry their owner.
  await b.remove(A);
  assert.equal(await host.nft("inet", "hostfw").dump(), HOSTFW_ADDRESSES_B);
  // (its CNI-FORWARD rules go too: the intent record names them; upstream's would stay)
  assert.deepEqual(await b.check(A, SPEC_A), [
    "hostForward: the accepts of the container in chain inet hostfw forward",
    "iptables rule -A CNI-FORWARD -d 10.88.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "iptables rule -A CNI-FORWARD -s 10.88.0.5/32 -j ACCEPT",
    "ip6tables rule -A CNI-FORWARD -d fd00::5/128 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "ip6tables rule -A CNI-FORWARD -s fd00::5/128 -j ACCEPT",
  ]);
  await b.gc("net1", [B]);
  assert.equal(await host.nft("inet", "hostfw").dump(), HOSTFW_ADDRESSES_B);
  await b.gc("net1", []);
  assert.equal(await host.nft("inet", "hostfw").dump(), HOSTFW_EMPTY);
});

test("hostForward: an ip table sees only IPv4 (no IPv6 rule there)", async () => {
  const host = new FakeHost();
  const hf = host.nft("ip", "hostfw");
  await hf.run(
    hf.newTransaction().add({ kind: "table" }).add({
      kind: "chain",
      name: "fw_in",
      type: "filter",
      hook: "forward",
      priority: "filter",
      policy: "drop",
    }),
  );
  const b = firewallBackends(host, {
    nftables: { family: "ip", table: "hostfw", chain: "fw_in" },
    iptables: false,
  }).find((x) => x.name === "iptables")!;
  await b.setUp(A, SPEC_A);
  assert.equal(
    await hf.dump(),
    `add table ip hostfw
add chain ip hostfw fw_in { type filter hook forward priority 0 ; policy drop ; }
add rule ip hostfw fw_in ip saddr 10.88.0.5 accept comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1"
add rule ip hostfw fw_in ip daddr 10.88.0.5 ct state established,related accept comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1"
`,
  );
  assert.deepEqual(await b.check(A, SPEC_A), []);
});

test("hostForward, nftables backend: DEL while another attachment of the network is noted reads nothing; the last one's DEL lists once", async () => {
  const host = await hostWithFirewall();
  const b = firewallBackends(host, BOTH).find((x) => x.name === "nftables")!;
  await b.setUp(A, SPEC_A);
  await b.setUp(B, SPEC_B);
  const nft = (b as unknown as { nft: Record<string, (...args: unknown[]) => unknown> }).nft;
  const reads: string[] = [];
  for (const m of ["listElements", "listTable", "listRules", "list"]) {
    const orig = nft[m]!.bind(nft);
    nft[m] = (...args: unknown[]) => {
      reads.push(m);
      return orig(...args);
    };
  }
  await b.remove(A, SPEC_A);
  assert.deepEqual(reads, [], "B is noted: by key, no listing");
  assert.equal(await host.nft("inet", "hostfw").dump(), HOSTFW_MARK, "B still needs it");
  await b.remove(B);
  assert.ok(reads.length > 0, "the last one: the listing decides");
  assert.equal(await host.nft("inet", "hostfw").dump(), HOSTFW_EMPTY);
  assert.equal(host.iptables.saveText(4, "filter"), FILTER_MARK_GONE);
});
