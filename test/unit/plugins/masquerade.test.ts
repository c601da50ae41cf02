/**
 * Masquerade on both backends without root: the fake nftables ruleset and the fake iptables.
 * Every step's host state is compared with literal text (test/integration/bridge*.test.ts and
 * ptp.test.ts prove the same layouts on the kernel with real packets).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeHost } from "../../../src/hoststate/fake.js";
import { IptablesMasq, NftablesMasq, masqueradeBackends } from "../../../src/ipmasq/index.js";
import { MASQ_TABLE, UPSTREAM_MASQ_TABLE } from "../../../src/ipmasq/ipmasq_nftables.js";
import type { HostStateBackend } from "../../../src/hoststate/index.js";
import type { Family, Interface } from "../../../src/nftables/index.js";
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

const T = "inet cni_nft_masquerade";
const OWNER_A = "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1";
const OWNER_B = "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2";
const OWNER_C = "a5855bd82c6a57c4-44c6f087a0899083, net: net2, if: eth1, id: ctr3";
const NFT_HEAD = String.raw`add table ${T} { comment "IP masquerade (cni-nft): container address to its subnet's counter" ; }
`;
const NFT_MAPS = String.raw`add map ${T} masq4 { type ipv4_addr : counter ; }
add map ${T} masq6 { type ipv6_addr : counter ; }
add set ${T} owners { type ifname . ifname ; comment "owner tag . element tag, one per element (comment: owner)" ; }
`;
const S4 = "masq4-15f04f2f13e6"; // 10.88.0.0/24
const S4C = "masq4-9d8797614eb1"; // 10.99.0.0/16
const S6 = "masq6-ef330fd8e3d4"; // fd00::/64
const counter = (name: string, subnet: string, map: string): string =>
  `add counter ${T} ${name} { comment "masquerade from ${subnet}, named by ${map}" ; }\n`;
const chain = (name: string): string =>
  `add chain ${T} ${name} { type nat hook postrouting priority 100 ; policy accept ; }\n`;
const RULE_S4 = `add rule ${T} ${S4} ip saddr 10.88.0.0/24 ip daddr != 10.88.0.0/24 ip daddr != 224.0.0.0/4 counter name ip saddr map @masq4 masquerade\n`;
const RULE_S4C = `add rule ${T} ${S4C} ip saddr 10.99.0.0/16 ip daddr != 10.99.0.0/16 ip daddr != 224.0.0.0/4 counter name ip saddr map @masq4 masquerade\n`;
const RULE_S6 = `add rule ${T} ${S6} ip6 saddr fd00::/64 ip6 daddr != fd00::/64 ip6 daddr != ff00::/8 counter name ip6 saddr map @masq6 masquerade\n`;
/** All three attached: A (10.88.0.5/24, fd00::5/64), B (10.88.0.6/24), C (10.99.0.7/16, another network). */
const NFT_ALL =
  NFT_HEAD +
  counter(S4, "10.88.0.0/24", "masq4") +
  counter(S4C, "10.99.0.0/16", "masq4") +
  counter(S6, "fd00::/64", "masq6") +
  chain(S4) +
  chain(S4C) +
  chain(S6) +
  NFT_MAPS +
  RULE_S4 +
  RULE_S4C +
  RULE_S6 +
  String.raw`add element ${T} masq4 { 10.88.0.5 comment "${OWNER_A}" : ${S4}, 10.88.0.6 comment "${OWNER_B}" : ${S4}, 10.99.0.7 comment "${OWNER_C}" : ${S4C} }
add element ${T} masq6 { fd00::5 comment "${OWNER_A}" : ${S6} }
add element ${T} owners { 9fb6ac25b24dfdc . 748f85ac71b9b3b comment "${OWNER_A}", 9fb6ac25b24dfdc . e665519043636e4 comment "${OWNER_A}", a433e06bafb74e2 . 3e3bc568900ad45 comment "${OWNER_C}", c341cbe82cf3de1 . 2f06da08de7b72d comment "${OWNER_B}" }
`;
/** B and C: A's elements gone, and the IPv6 subnet's counter and chain only A used. */
const NFT_B_C =
  NFT_HEAD +
  counter(S4, "10.88.0.0/24", "masq4") +
  counter(S4C, "10.99.0.0/16", "masq4") +
  chain(S4) +
  chain(S4C) +
  NFT_MAPS +
  RULE_S4 +
  RULE_S4C +
  String.raw`add element ${T} masq4 { 10.88.0.6 comment "${OWNER_B}" : ${S4}, 10.99.0.7 comment "${OWNER_C}" : ${S4C} }
add element ${T} owners { a433e06bafb74e2 . 3e3bc568900ad45 comment "${OWNER_C}", c341cbe82cf3de1 . 2f06da08de7b72d comment "${OWNER_B}" }
`;

function nftBackend(host: FakeHost): NftablesMasq {
  return backend(host, "nftables") as NftablesMasq;
}

test("masquerade nftables: ADD writes cni-nft's table, one element per address and its owner element", async () => {
  const [host] = await threeAttached("nftables");
  assert.equal(await host.dump(), NFT_ALL);
  // The record names what ADD wrote, before it ran nft.
  assert.deepEqual(JSON.parse(host.records("masquerade").files.get(OWNER_A.split(",")[0]!)!), {
    elements: [
      { kind: "element", map: "masq4", key: ["10.88.0.5"] },
      { kind: "element", map: "masq6", key: ["fd00::5"] },
    ],
    chains: ["masq4-15f04f2f13e6", "masq6-ef330fd8e3d4"],
  });
});

test("masquerade nftables: a repeated ADD changes nothing; DEL with prevResult removes only the attachment's elements", async () => {
  const [host, b] = await threeAttached("nftables");
  await b.setUp(A, SPEC_A);
  assert.equal(await host.dump(), NFT_ALL);
  assert.deepEqual(await b.check(A, SPEC_A), []);
  host.records("masquerade").files.clear();
  await b.remove(A, SPEC_A);
  assert.equal(await host.dump(), NFT_B_C);
  await b.remove(A, SPEC_A);
  assert.equal(await host.dump(), NFT_B_C);
});

test("masquerade nftables: DEL without prevResult takes the keys from the record, then removes it", async () => {
  const [host, b] = await threeAttached("nftables");
  await b.remove(A);
  assert.equal(await host.dump(), NFT_B_C);
  assert.equal(host.records("masquerade").files.has(OWNER_A.split(",")[0]!), false);
  // Neither prevResult nor record: nothing of it can be in the table (ADD writes the record first).
  await b.remove(A);
  assert.equal(await host.dump(), NFT_B_C);
});

test("masquerade nftables: a stale record cannot delete the element another container took over", async () => {
  const [host, b] = await threeAttached("nftables");
  const D = { network: "net1", containerId: "ctr4", ifname: "eth0" };
  // The address went to D (A's DEL never came): D's ADD finds the key and takes it over.
  await b.setUp(D, { addresses: ["10.88.0.5/24"] });
  assert.deepEqual(await b.check(D, { addresses: ["10.88.0.5/24"] }), []);
  assert.deepEqual(await b.check(A, SPEC_A), [`element 10.88.0.5 : ${S4} of map masq4 in table ${T}`]);
  // A's DEL (its record names 10.88.0.5) deletes its IPv6 element and leaves D's.
  await b.remove(A);
  assert.deepEqual(await b.check(D, { addresses: ["10.88.0.5/24"] }), []);
  assert.doesNotMatch(await host.dump(), /id: ctr1/);
});

/** The nft calls the backend makes (runs and reads, by table), through a fake host. */
function countingHost(): { host: FakeHost; calls: string[] } {
  const host = new FakeHost();
  const calls: string[] = [];
  const wrap = (nft: Interface): Interface =>
    new Proxy(nft, {
      get(target, prop, receiver): unknown {
        const v: unknown = Reflect.get(target, prop, receiver);
        if (typeof v !== "function") return v;
        if (prop === "forTable") return (f: Family, t: string) => wrap(target.forTable(f, t));
        if (prop === "newTransaction") return () => target.newTransaction();
        return (...args: unknown[]) => {
          calls.push(`${String(prop)} ${target.table}`);
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  const nft = host.nft.bind(host);
  Object.assign(host, { nft: (f: Family, t: string) => wrap(nft(f, t)) });
  return { host, calls };
}

/** A, B and C attached on a counting host (what follows counts from there). */
async function countedThree(): Promise<{ host: FakeHost; calls: string[]; b: NftablesMasq }> {
  const { host, calls } = countingHost();
  const b = nftBackend(host);
  for (const [x, s] of [
    [A, SPEC_A],
    [B, SPEC_B],
    [C, SPEC_C],
  ] as const)
    await b.setUp(x, s);
  calls.length = 0;
  return { host, calls, b };
}

test("masquerade nftables: DEL tries to drop only the subnet chains no other attachment is noted to use (a batch that fails costs the kernel an abort)", async () => {
  const { host, calls, b } = await countedThree();
  assert.equal(await host.dump(), NFT_ALL);
  calls.length = 0;
  // B shares 10.88.0.0/24 with A: its elements go, and no batch tries the subnet's chain.
  await b.remove(B, SPEC_B);
  assert.deepEqual(calls, [`listRules ${UPSTREAM_MASQ_TABLE}`, `run ${MASQ_TABLE}`]);
  calls.length = 0;
  // A is the last of 10.88.0.0/24 and of fd00::/64: one more batch drops both.
  await b.remove(A);
  assert.deepEqual(calls, [`listRules ${UPSTREAM_MASQ_TABLE}`, `run ${MASQ_TABLE}`, `run ${MASQ_TABLE}`]);
  assert.doesNotMatch(await host.dump(), new RegExp(`${S4}|${S6}|ctr1|ctr2`));
  assert.deepEqual(host.records("masquerade").uses(), [[S4C, OWNER_C.split(",")[0]!]]);
});

test("masquerade nftables: a repeated ADD asserts its recorded keys: one run, no listing, one copy", async () => {
  const { host, calls, b } = await countedThree();
  await b.setUp(A, SPEC_A);
  assert.deepEqual(calls, [`runAll ${MASQ_TABLE}`]);
  assert.equal(await host.dump(), NFT_ALL);
  // The one run: per subnet its chain; per address its owner element deleted and added again
  // (fails unless it is there), then the element added (a no-op when it holds this value).
  const plan = await b.plan(A, SPEC_A);
  assert.deepEqual(
    plan.fast[0]!.render()
      .text.split("\n")
      .filter((l) => / (masq[46]|owners) /.test(l) && l.includes("element")),
    [
      `delete element ${T} owners { "9fb6ac25b24dfdc" . "e665519043636e4" }`,
      `add element ${T} owners { "9fb6ac25b24dfdc" . "e665519043636e4" comment "${OWNER_A}" }`,
      `add element ${T} masq4 { 10.88.0.5 comment "${OWNER_A}" : ${S4} }`,
      `delete element ${T} owners { "9fb6ac25b24dfdc" . "748f85ac71b9b3b" }`,
      `add element ${T} owners { "9fb6ac25b24dfdc" . "748f85ac71b9b3b" comment "${OWNER_A}" }`,
      `add element ${T} masq6 { fd00::5 comment "${OWNER_A}" : ${S6} }`,
    ],
  );
});

test("masquerade nftables: a repeated ADD whose address another attachment took over lists the table and takes it back", async () => {
  const { host, calls, b } = await countedThree();
  const D = { network: "net1", containerId: "ctr4", ifname: "eth0" };
  await b.setUp(D, { addresses: ["10.88.0.5/24"] });
  calls.length = 0;
  await b.setUp(A, SPEC_A);
  // The fast run fails (A's owner element of 10.88.0.5 went with D's take-over), the full one
  // too (the key exists): a listing, then the take-back.
  assert.deepEqual(calls, [
    `runAll ${MASQ_TABLE}`,
    `runAll ${MASQ_TABLE}`,
    `listTable ${MASQ_TABLE}`,
    `run ${MASQ_TABLE}`,
  ]);
  assert.equal(await host.dump(), NFT_ALL);
  await b.remove(D);
  assert.equal(await host.dump(), NFT_ALL);
});

test("masquerade nftables: without notes of use (a host upgraded while containers run) the kernel decides, and GC drops what a killed DEL left", async () => {
  const [host, b] = await threeAttached("nftables");
  const records = host.records("masquerade");
  for (const [name, owner] of records.uses()) records.release(name, owner);
  await b.remove(B, SPEC_B);
  assert.match(await host.dump(), new RegExp(S4));
  // A DEL killed after its elements went and its note was released: the chains stay; GC drops them.
  const tx = host.nft("inet", MASQ_TABLE).newTransaction();
  tx.delete({ kind: "element", map: "masq4", key: ["10.88.0.5"] });
  tx.delete({ kind: "element", map: "masq6", key: ["fd00::5"] });
  await host.nft("inet", MASQ_TABLE).run(tx);
  await b.gc("net1", []);
  assert.doesNotMatch(await host.dump(), new RegExp(`${S4}|${S6}`));
  assert.match(await host.dump(), new RegExp(S4C));
});

test("masquerade nftables: DEL on a host without the table succeeds", async () => {
  const host = new FakeHost();
  await backend(host, "nftables").remove(A, SPEC_A);
  await backend(host, "nftables").remove(A);
  assert.equal(await host.dump(), "");
});

test("masquerade nftables: GC keeps the valid attachments and other networks, and drops stale records", async () => {
  const [host, b] = await threeAttached("nftables");
  await b.gc("net1", [B]);
  assert.equal(await host.dump(), NFT_B_C);
  assert.deepEqual(
    host.records("masquerade").owners().sort(),
    [OWNER_C, OWNER_B].map((o) => o.split(",")[0]!).sort(),
  );
});

test("masquerade nftables: CHECK names the missing element, owner element and a flushed subnet chain; ADD repairs", async () => {
  const [host, b] = await threeAttached("nftables");
  assert.deepEqual(await b.check(A, SPEC_A), []);
  const nft = host.nft("inet", MASQ_TABLE);
  await nft.run(
    nft
      .newTransaction()
      .delete({ kind: "element", map: "masq6", key: ["fd00::5"] })
      .delete({ kind: "element", set: "owners", key: ['"9fb6ac25b24dfdc"', '"e665519043636e4"'] })
      .flush({ kind: "chain", name: S4 }),
  );
  assert.deepEqual(await b.check(A, SPEC_A), [
    `rule "ip saddr 10.88.0.0/24 ip daddr != 10.88.0.0/24 ip daddr != 224.0.0.0/4 counter name ip saddr map @masq4 masquerade" in chain ${S4} of table ${T}`,
    `the owner element of 10.88.0.5 in set owners of table ${T}`,
    `element fd00::5 : ${S6} of map masq6 in table ${T}`,
  ]);
  await b.setUp(A, SPEC_A);
  assert.deepEqual(await b.check(A, SPEC_A), []);
  assert.equal(await host.dump(), NFT_ALL);
});

test("masquerade nftables: ADD is one run, the table's declarations only when they are missing", async () => {
  const host = new FakeHost();
  const b = nftBackend(host);
  const plan = await b.plan(A, SPEC_A);
  // Per subnet: counter, base chain, flush, rule; per address: element and owner element.
  assert.deepEqual(
    plan.fast.map((tx) => tx.size),
    [2 * 4 + 2 * 2],
  );
  // The table, two maps and the owners set too.
  assert.deepEqual(
    plan.full.map((tx) => tx.size),
    [4 + 12],
  );
});

/** A container in upstream's layout (also cni-nft's before its own table), as upstream's ADD writes it. */
async function upstreamAdd(host: FakeHost, comment: string, rules: string[]): Promise<void> {
  const nft = host.nft("inet", UPSTREAM_MASQ_TABLE);
  const tx = nft
    .newTransaction()
    .add({ kind: "table", comment: "Masquerading for plugins from github.com/containernetworking/plugins" })
    .add({ kind: "chain", name: "masq_checks" })
    .add({ kind: "chain", name: "postrouting", type: "nat", hook: "postrouting", priority: "srcnat" })
    .flush({ kind: "chain", name: "postrouting" });
  for (const rule of ["ip daddr 224.0.0.0/4 return", "ip6 daddr ff00::/8 return", "goto masq_checks"])
    tx.add({ kind: "rule", chain: "postrouting", rule });
  for (const rule of rules) tx.add({ kind: "rule", chain: "masq_checks", rule, comment });
  await nft.run(tx);
}

const UP = "inet cni_plugins_masquerade";
const UP_HEAD = String.raw`add table ${UP} { comment "Masquerading for plugins from github.com/containernetworking/plugins" ; }
add chain ${UP} masq_checks
add chain ${UP} postrouting { type nat hook postrouting priority 100 ; policy accept ; }
`;
const UP_POSTROUTING = String.raw`add rule ${UP} postrouting ip daddr 224.0.0.0/4 return
add rule ${UP} postrouting ip6 daddr ff00::/8 return
add rule ${UP} postrouting goto masq_checks
`;

test("masquerade nftables: containers of upstream's layout CHECK whole, DEL and GC remove only theirs, ADD never writes there", async () => {
  const host = new FakeHost();
  const b = nftBackend(host);
  await upstreamAdd(host, OWNER_A, [
    "ip saddr 10.88.0.5 ip daddr != 10.88.0.0/24 masquerade",
    "ip6 saddr fd00::5 ip6 daddr != fd00::/64 masquerade",
  ]);
  await upstreamAdd(host, OWNER_B, ["ip saddr 10.88.0.6 ip daddr != 10.88.0.0/24 masquerade"]);
  await upstreamAdd(host, OWNER_C, ["ip saddr 10.99.0.7 ip daddr != 10.99.0.0/16 masquerade"]);
  const upB = String.raw`add rule ${UP} masq_checks ip saddr 10.88.0.6 ip daddr != 10.88.0.0/24 masquerade comment "${OWNER_B}"
`;
  const upC = String.raw`add rule ${UP} masq_checks ip saddr 10.99.0.7 ip daddr != 10.99.0.0/16 masquerade comment "${OWNER_C}"
`;
  assert.deepEqual(await b.check(A, SPEC_A), []);
  assert.equal(await b.holds(A), true);
  assert.equal(await b.holdsOwn(A), false);
  const upstreamPart = async (): Promise<string> => {
    const dump = await host.dump();
    return dump.slice(dump.indexOf(`add table ${UP}`));
  };
  const upA = String.raw`add rule ${UP} masq_checks ip saddr 10.88.0.5 ip daddr != 10.88.0.0/24 masquerade comment "${OWNER_A}"
add rule ${UP} masq_checks ip6 saddr fd00::5 ip6 daddr != fd00::/64 masquerade comment "${OWNER_A}"
`;
  assert.equal(await upstreamPart(), UP_HEAD + upA + upB + upC + UP_POSTROUTING);
  // A new container goes to cni-nft's table only.
  const D = { network: "net1", containerId: "ctr4", ifname: "eth0" };
  await b.setUp(D, { addresses: ["10.88.0.9/24"] });
  assert.equal(await upstreamPart(), UP_HEAD + upA + upB + upC + UP_POSTROUTING);
  // DEL without prevResult and without record still finds A's rules (by comment, in upstream's chain).
  await b.remove(A);
  await b.remove(D);
  assert.equal(await upstreamPart(), UP_HEAD + upB + upC + UP_POSTROUTING);
  assert.doesNotMatch(await host.dump(), /ctr4/);
  await b.gc("net1", []);
  assert.equal(await upstreamPart(), UP_HEAD + upC + UP_POSTROUTING);
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

/** After A, B, C and A again: A's jump last (replaced), its chain rewritten. */
const readdedA = (): string =>
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
  "COMMIT\n";

test("masquerade iptables: ADD is one iptables-restore per family with upstream's chain and comment, without reading the table", async () => {
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
  assert.deepEqual(host.iptables.saves, []);
  assert.deepEqual(
    host.iptables.restores.slice(0, 2).map((r) => [r.family, r.input]),
    [
      [
        4,
        String.raw`*nat
-N CNI-85373d34c6846b6c53ee2e7f
-A CNI-85373d34c6846b6c53ee2e7f -d 10.88.0.0/24 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j ACCEPT
-A CNI-85373d34c6846b6c53ee2e7f ! -d 224.0.0.0/4 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j MASQUERADE
-A POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j CNI-85373d34c6846b6c53ee2e7f
COMMIT
`,
      ],
      [
        6,
        String.raw`*nat
-N CNI-85373d34c6846b6c53ee2e7f
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
  assert.equal(await host.dump(), readdedA());
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

test("masquerade iptables: DEL with the ADD's record deletes its jumps and chain in one batch per family, no read", async () => {
  const [host, b] = await threeAttached("iptables");
  host.iptables.saves.length = 0;
  await b.remove(A);
  assert.deepEqual(host.iptables.saves, []);
  assert.deepEqual(
    host.iptables.restores.slice(-2).map((r) => [r.family, r.input]),
    [
      [
        4,
        String.raw`*nat
-D POSTROUTING -s 10.88.0.5/32 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j CNI-85373d34c6846b6c53ee2e7f
-F CNI-85373d34c6846b6c53ee2e7f
-X CNI-85373d34c6846b6c53ee2e7f
COMMIT
`,
      ],
      [
        6,
        String.raw`*nat
-D POSTROUTING -s fd00::5/128 -m comment --comment "name: \"net1\" id: \"ctr1\"" -j CNI-85373d34c6846b6c53ee2e7f
-F CNI-85373d34c6846b6c53ee2e7f
-X CNI-85373d34c6846b6c53ee2e7f
COMMIT
`,
      ],
    ],
  );
  assert.equal(await host.dump(), AFTER_DEL_A);
  assert.deepEqual(host.records("masquerade-iptables").files.size, 2);
});

test("masquerade iptables: a DEL whose batch fails (a jump removed by hand) reads the table and removes the rest", async () => {
  const [host, b] = await threeAttached("iptables");
  await host.iptables.restore(4, "nat", [IPT_JUMP_A.trim().replace(/^-A/, "-D")]);
  host.iptables.saves.length = 0;
  await b.remove(A);
  assert.deepEqual(host.iptables.saves, ["4 nat"]);
  assert.equal(await host.dump(), AFTER_DEL_A);
});

test("masquerade iptables: a record whose ADD never ran (killed): DEL falls back and succeeds", async () => {
  const host = new FakeHost();
  const b = masqueradeBackends(host).find((x) => x.name === "iptables")!;
  await b.setUp(A, SPEC_A);
  await b.remove(A);
  const records = host.records("masquerade-iptables");
  await b.setUp(A, SPEC_A);
  const record = [...records.files.entries()];
  await b.remove(A);
  for (const [owner, data] of record) records.files.set(owner, data);
  await b.remove(A);
  assert.equal(await host.dump(), IPT4_HEAD + "COMMIT\n" + IPT6_HEAD + "COMMIT\n");
  assert.equal(records.files.size, 0);
});

test("masquerade iptables: an ADD with no record over a chain left by upstream falls back to read and replace (one copy)", async () => {
  const [host, b] = await threeAttached("iptables");
  host.records("masquerade-iptables").files.clear();
  await b.setUp(A, SPEC_A);
  assert.equal(await host.dump(), readdedA());
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
