/**
 * Masquerade on both backends without root: the fake nftables ruleset and the fake iptables.
 * Every step's host state is compared with literal text (test/integration/bridge*.test.ts and
 * ptp.test.ts prove the same layouts on the kernel with real packets).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeHost } from "../../../src/hoststate/fake.js";
import { IptablesMasq, NftablesMasq, masqueradeBackends } from "../../../src/ipmasq/index.js";
import { MASQ_TABLE } from "../../../src/ipmasq/ipmasq_nftables.js";
import type { HostStateBackend } from "../../../src/hoststate/index.js";
import type { MasqSpec } from "../../../src/ipmasq/index.js";

const A = { network: "net1", containerId: "ctr1", ifname: "eth0" };
const B = { network: "net1", containerId: "ctr2", ifname: "eth0" };
/** Another network: a GC of net1 never touches it. */
const C = { network: "net2", containerId: "ctr3", ifname: "eth1" };
const SPEC_A: MasqSpec = { addresses: ["10.88.0.5/24", "fd00::5/64"] };
const SPEC_B: MasqSpec = { addresses: ["10.88.0.6/24"] };
const SPEC_C: MasqSpec = { addresses: ["10.99.0.7/16"] };

function backend(host: FakeHost, name: "iptables" | "nftables"): HostStateBackend<MasqSpec> {
  return masqueradeBackends(host).find((b) => b.name === name)!;
}

async function threeAttached(name: "iptables" | "nftables"): Promise<[FakeHost, HostStateBackend<MasqSpec>]> {
  const host = new FakeHost();
  const b = backend(host, name);
  await b.setUp(A, SPEC_A);
  await b.setUp(B, SPEC_B);
  await b.setUp(C, SPEC_C);
  return [host, b];
}

const NFT_SKELETON = String.raw`add table inet cni_plugins_masquerade { comment "Masquerading for plugins from github.com/containernetworking/plugins" ; }
add chain inet cni_plugins_masquerade masq_checks { comment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet" ; }
add chain inet cni_plugins_masquerade postrouting { type nat hook postrouting priority 100 ; policy accept ; }
`;
const NFT_POSTROUTING = String.raw`add rule inet cni_plugins_masquerade postrouting ip daddr 224.0.0.0/4 return
add rule inet cni_plugins_masquerade postrouting ip6 daddr ff00::/8 return
add rule inet cni_plugins_masquerade postrouting goto masq_checks
`;
const NFT_A = String.raw`add rule inet cni_plugins_masquerade masq_checks ip saddr 10.88.0.5 ip daddr != 10.88.0.0/24 masquerade comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1"
add rule inet cni_plugins_masquerade masq_checks ip6 saddr fd00::5 ip6 daddr != fd00::/64 masquerade comment "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1"
`;
const NFT_B = String.raw`add rule inet cni_plugins_masquerade masq_checks ip saddr 10.88.0.6 ip daddr != 10.88.0.0/24 masquerade comment "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2"
`;
const NFT_C = String.raw`add rule inet cni_plugins_masquerade masq_checks ip saddr 10.99.0.7 ip daddr != 10.99.0.0/16 masquerade comment "a5855bd82c6a57c4-44c6f087a0899083, net: net2, if: eth1, id: ctr3"
`;

test("masquerade nftables: ADD writes upstream's table, one rule per address, owner in the comment", async () => {
  const [host] = await threeAttached("nftables");
  assert.equal(await host.dump(), NFT_SKELETON + NFT_A + NFT_B + NFT_C + NFT_POSTROUTING);
});

test("masquerade nftables: a second ADD replaces the attachment's rules (one copy); DEL removes them", async () => {
  const [host, b] = await threeAttached("nftables");
  await b.setUp(A, SPEC_A);
  assert.equal(await host.dump(), NFT_SKELETON + NFT_B + NFT_C + NFT_A + NFT_POSTROUTING);
  assert.deepEqual(await b.check(A, SPEC_A), []);
  await b.remove(A);
  assert.equal(await host.dump(), NFT_SKELETON + NFT_B + NFT_C + NFT_POSTROUTING);
});

test("masquerade nftables: a second ADD with another address leaves only the new rule", async () => {
  const [host, b] = await threeAttached("nftables");
  await b.setUp(A, { addresses: ["10.88.0.9/24"] });
  assert.equal(
    await host.dump(),
    NFT_SKELETON +
      NFT_B +
      NFT_C +
      NFT_A.split("\n")[0]!.replaceAll("10.88.0.5", "10.88.0.9") +
      "\n" +
      NFT_POSTROUTING,
  );
});

test("masquerade nftables: DEL removes only the attachment's rules; DEL again changes nothing", async () => {
  const [host, b] = await threeAttached("nftables");
  await b.remove(A);
  const after = NFT_SKELETON + NFT_B + NFT_C + NFT_POSTROUTING;
  assert.equal(await host.dump(), after);
  await b.remove(A);
  assert.equal(await host.dump(), after);
});

test("masquerade nftables: DEL on a host without the table succeeds", async () => {
  const host = new FakeHost();
  await backend(host, "nftables").remove(A);
  assert.equal(await host.dump(), "");
});

test("masquerade nftables: GC keeps the valid attachments and other networks", async () => {
  const [host, b] = await threeAttached("nftables");
  await b.gc("net1", [B]);
  assert.equal(await host.dump(), NFT_SKELETON + NFT_B + NFT_C + NFT_POSTROUTING);
});

test("masquerade nftables: CHECK names the missing rule and a damaged base chain", async () => {
  const [host, b] = await threeAttached("nftables");
  assert.deepEqual(await b.check(A, SPEC_A), []);
  const nft = host.nft("inet", MASQ_TABLE);
  const v6 = (await nft.listRules("masq_checks", { text: true })).find((r) =>
    r.rule.startsWith("ip6 saddr fd00::5"),
  )!;
  await nft.run(
    nft.newTransaction().delete({ kind: "rule", chain: "masq_checks", rule: "", handle: v6.handle! }),
  );
  await nft.run(nft.newTransaction().flush({ kind: "chain", name: "postrouting" }));
  assert.deepEqual(await b.check(A, SPEC_A), [
    'rule "ip daddr 224.0.0.0/4 return" in chain postrouting of table inet cni_plugins_masquerade',
    'rule "ip6 daddr ff00::/8 return" in chain postrouting of table inet cni_plugins_masquerade',
    'rule "goto masq_checks" in chain postrouting of table inet cni_plugins_masquerade',
    "nftables masquerade rule for fd00::5 in table inet cni_plugins_masquerade chain masq_checks",
  ]);
  // ADD repairs its own rules and the shared ones (the fast path rewrites the base chain).
  await b.setUp(A, SPEC_A);
  assert.deepEqual(await b.check(A, SPEC_A), []);
});

test("masquerade nftables: ADD is one run without the table and chain declarations once the table exists", async () => {
  const host = new FakeHost();
  const b = new NftablesMasq(host.nft("inet", MASQ_TABLE), host.tools);
  const plan = await b.plan(A, SPEC_A);
  // The container's two rules, and the base chain's flush and three rules (repairs a flush).
  assert.deepEqual(
    plan.fast.map((tx) => tx.size),
    [6],
  );
  assert.deepEqual(
    plan.full.map((tx) => tx.size),
    [9],
  );
  await b.setUp(A, SPEC_A);
  // Planned again: the two rules of the first ADD are deleted in the same run.
  assert.deepEqual(
    (await b.plan(A, SPEC_A)).fast.map((tx) => tx.size),
    [8],
  );
});

const IPT4_HEAD = String.raw`# iptables
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
`;
const IPT6_HEAD = String.raw`# ip6tables
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
`;
const CHAIN_A = "CNI-85373d34c6846b6c53ee2e7f";
const CHAIN_B = "CNI-ed4ec4e114083227db6b9194";
const CHAIN_C = "CNI-ab34fddc4b1c33839a653fae";
const IPT_JUMP_A = String.raw`-A POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j CNI-85373d34c6846b6c53ee2e7f
`;
const IPT_JUMP_B = String.raw`-A POSTROUTING -s 10.88.0.6/32 -m comment --comment "name: \"net1\" id: \"ctr2\"" -j CNI-ed4ec4e114083227db6b9194
`;
const IPT_JUMP_C = String.raw`-A POSTROUTING -s 10.99.0.7/32 -m comment --comment "name: \"net2\" id: \"ctr3\"" -j CNI-ab34fddc4b1c33839a653fae
`;
const IPT_RULES_A = String.raw`-A CNI-85373d34c6846b6c53ee2e7f -d 10.88.0.0/24 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j ACCEPT
-A CNI-85373d34c6846b6c53ee2e7f ! -d 224.0.0.0/4 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j MASQUERADE
`;
const IPT_RULES_B = String.raw`-A CNI-ed4ec4e114083227db6b9194 -d 10.88.0.0/24 -m comment --comment "name: \"net1\" id: \"ctr2\"" -j ACCEPT
-A CNI-ed4ec4e114083227db6b9194 ! -d 224.0.0.0/4 -m comment --comment "name: \"net1\" id: \"ctr2\"" -j MASQUERADE
`;
const IPT_RULES_C = String.raw`-A CNI-ab34fddc4b1c33839a653fae -d 10.99.0.0/16 -m comment --comment "name: \"net2\" id: \"ctr3\"" -j ACCEPT
-A CNI-ab34fddc4b1c33839a653fae ! -d 224.0.0.0/4 -m comment --comment "name: \"net2\" id: \"ctr3\"" -j MASQUERADE
`;
const IPT6_A = String.raw`:CNI-85373d34c6846b6c53ee2e7f - [0:0]
-A POSTROUTING -s fd00::5/128 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j CNI-85373d34c6846b6c53ee2e7f
-A CNI-85373d34c6846b6c53ee2e7f -d fd00::/64 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j ACCEPT
-A CNI-85373d34c6846b6c53ee2e7f ! -d ff00::/8 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j MASQUERADE
`;
const decl = (...chains: string[]): string => chains.map((c) => `:${c} - [0:0]\n`).join("");
const AFTER_DEL_A =
  IPT4_HEAD +
  decl(CHAIN_C, CHAIN_B) +
  IPT_JUMP_B +
  IPT_JUMP_C +
  IPT_RULES_C +
  IPT_RULES_B +
  "COMMIT\n" +
  IPT6_HEAD +
  "COMMIT\n";

test("masquerade iptables: ADD is one iptables-restore per family with upstream's chain and comment", async () => {
  const [host] = await threeAttached("iptables");
  assert.equal(
    await host.dump(),
    IPT4_HEAD +
      decl(CHAIN_A, CHAIN_C, CHAIN_B) +
      IPT_JUMP_A +
      IPT_JUMP_B +
      IPT_JUMP_C +
      IPT_RULES_A +
      IPT_RULES_C +
      IPT_RULES_B +
      "COMMIT\n" +
      IPT6_HEAD +
      IPT6_A +
      "COMMIT\n",
  );
  assert.deepEqual(
    host.iptables.restores.slice(0, 2).map((r) => [r.family, r.input]),
    [
      [
        4,
        String.raw`*nat
:CNI-85373d34c6846b6c53ee2e7f - [0:0]
-A CNI-85373d34c6846b6c53ee2e7f -d 10.88.0.0/24 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j ACCEPT
-A CNI-85373d34c6846b6c53ee2e7f ! -d 224.0.0.0/4 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j MASQUERADE
-A POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j CNI-85373d34c6846b6c53ee2e7f
COMMIT
`,
      ],
      [
        6,
        String.raw`*nat
:CNI-85373d34c6846b6c53ee2e7f - [0:0]
-A CNI-85373d34c6846b6c53ee2e7f -d fd00::/64 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j ACCEPT
-A CNI-85373d34c6846b6c53ee2e7f ! -d ff00::/8 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j MASQUERADE
-A POSTROUTING -s fd00::5/128 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j CNI-85373d34c6846b6c53ee2e7f
COMMIT
`,
      ],
    ],
  );
});

test("masquerade iptables: a second ADD rewrites the chain and replaces the jump (one copy); DEL removes them", async () => {
  const [host, b] = await threeAttached("iptables");
  await b.setUp(A, SPEC_A);
  assert.equal(
    await host.dump(),
    IPT4_HEAD +
      decl(CHAIN_A, CHAIN_C, CHAIN_B) +
      IPT_JUMP_B +
      IPT_JUMP_C +
      IPT_JUMP_A +
      IPT_RULES_A +
      IPT_RULES_C +
      IPT_RULES_B +
      "COMMIT\n" +
      IPT6_HEAD +
      IPT6_A +
      "COMMIT\n",
  );
  assert.equal(
    host.iptables.restores.at(-2)!.input,
    String.raw`*nat
-D POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j CNI-85373d34c6846b6c53ee2e7f
:CNI-85373d34c6846b6c53ee2e7f - [0:0]
-A CNI-85373d34c6846b6c53ee2e7f -d 10.88.0.0/24 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j ACCEPT
-A CNI-85373d34c6846b6c53ee2e7f ! -d 224.0.0.0/4 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j MASQUERADE
-A POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j CNI-85373d34c6846b6c53ee2e7f
COMMIT
`,
  );
  await b.remove(A);
  assert.equal(await host.dump(), AFTER_DEL_A);
});

test("masquerade iptables: DEL removes jumps and chain; DEL again runs no restore", async () => {
  const [host, b] = await threeAttached("iptables");
  await b.remove(A);
  assert.equal(await host.dump(), AFTER_DEL_A);
  const restores = host.iptables.restores.length;
  await b.remove(A);
  assert.equal(await host.dump(), AFTER_DEL_A);
  assert.equal(host.iptables.restores.length, restores);
});

test("masquerade iptables: GC removes the chains of this network's stale attachments only", async () => {
  const [host, b] = await threeAttached("iptables");
  await b.gc("net1", [B]);
  assert.equal(await host.dump(), AFTER_DEL_A);
});

test("masquerade iptables: CHECK names the missing chain and jump", async () => {
  const [host, b] = await threeAttached("iptables");
  assert.deepEqual(await b.check(A, SPEC_A), []);
  await host.iptables.restore(6, "nat", [
    String.raw`-D POSTROUTING -s fd00::5/128 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j ${CHAIN_A}`,
    `-F ${CHAIN_A}`,
    `-X ${CHAIN_A}`,
  ]);
  assert.deepEqual(await b.check(A, SPEC_A), [
    `ip6tables chain ${CHAIN_A} with a MASQUERADE rule in table nat`,
    "POSTROUTING jump to CNI-85373d34c6846b6c53ee2e7f for fd00::5",
  ]);
});

test("masquerade: the two backends are present by their tools", () => {
  const none = new FakeHost({ tools: [] });
  assert.deepEqual(
    masqueradeBackends(none).map((b) => b.present()),
    [false, false],
  );
  const host = new FakeHost();
  assert.ok(new IptablesMasq(host.iptables).present());
});
