/**
 * bridge's MAC spoof check and the veth host state (masquerade + spoof check) without root, on
 * the fake nftables ruleset, compared with literal text. test/integration/bridge-extra.test.ts
 * proves the same table on the kernel with spoofed frames.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeHost } from "../../../src/hoststate/fake.js";
import {
  checkVethState,
  gcVethState,
  removeVethState,
  setUpVethState,
  spoofCheck,
} from "../../../src/link/veth_state.js";
import type { SpoofCheck, SpoofSpec } from "../../../src/link/spoofcheck.js";
import type { Interface, Transaction } from "../../../src/nftables/index.js";

const A = { network: "net1", containerId: "ctr1", ifname: "eth0" };
const B = { network: "net1", containerId: "ctr2", ifname: "eth0" };
/** Another network: the bridge nat table is shared, so GC judges a check by its veth. */
const C = { network: "net2", containerId: "ctr3", ifname: "eth0" };
const SPEC_A: SpoofSpec = { hostVeth: "veth1", mac: "0A:58:0A:58:00:05" };
const SPEC_B: SpoofSpec = { hostVeth: "veth2", mac: "0a:58:0a:58:00:06" };
const SPEC_C: SpoofSpec = { hostVeth: "veth3", mac: "0a:58:0a:63:00:07" };

const T = "bridge cni_nft_spoofcheck";
const HEAD = `add table ${T} { comment "MAC spoof check (cni-nft): a host veth's frames only from its container's MAC" ; }
add chain ${T} prerouting { type filter hook prerouting priority -300 ; policy accept ; }
add set ${T} allowed { type ifname . ether_addr ; comment "host veth . the one source MAC it lets through" ; }
add set ${T} checked { type ifname ; comment "host veths whose frames are checked" ; }
add set ${T} owners { type ifname . ifname ; comment "owner tag . element tag, one per element (comment: owner)" ; }
add rule ${T} prerouting iifname @checked iifname . ether saddr != @allowed drop
`;
const OWNER_A = "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1";
const OWNER_B = "8e48f37d5de60467-a09553539d4cc24c, net: net1, if: eth0, id: ctr2";
const OWNER_C = "a5855bd82c6a57c4-dc2c1252476a5386, net: net2, if: eth0, id: ctr3";
const OWNERS_A = `9fb6ac25b24dfdc . 9cd6ccf13cd204f comment "${OWNER_A}", 9fb6ac25b24dfdc . b0f59f312c4eb26 comment "${OWNER_A}"`;
const OWNERS_B = `c341cbe82cf3de1 . 224ad48310d3288 comment "${OWNER_B}", c341cbe82cf3de1 . 3f63b6763373862 comment "${OWNER_B}"`;
const OWNERS_C = `8911529e0e42a90 . 0751e747fb1c8b7 comment "${OWNER_C}", 8911529e0e42a90 . a7609191ab23c8d comment "${OWNER_C}"`;
const ALLOWED_A = `veth1 . 0a:58:0a:58:00:05 comment "${OWNER_A}"`;
const ALLOWED_B = `veth2 . 0a:58:0a:58:00:06 comment "${OWNER_B}"`;
const ALLOWED_C = `veth3 . 0a:58:0a:63:00:07 comment "${OWNER_C}"`;
const CHECKED_A = `veth1 comment "${OWNER_A}"`;
const CHECKED_B = `veth2 comment "${OWNER_B}"`;
const CHECKED_C = `veth3 comment "${OWNER_C}"`;
/** The elements of the three sets, each in the fake's order. */
const elements = (allowed: string[], checked: string[], owners: string[]): string =>
  `add element ${T} allowed { ${allowed.join(", ")} }
add element ${T} checked { ${checked.join(", ")} }
add element ${T} owners { ${owners.join(", ")} }
`;
const ALL_THREE =
  HEAD +
  elements(
    [ALLOWED_A, ALLOWED_B, ALLOWED_C],
    [CHECKED_A, CHECKED_B, CHECKED_C],
    [OWNERS_C, OWNERS_A, OWNERS_B],
  );

async function attached(links = new Set(["veth1", "veth2", "veth3"])) {
  const host = new FakeHost();
  const sc = spoofCheck(host, () => Promise.resolve(links));
  await sc.setUp(A, SPEC_A);
  await sc.setUp(B, SPEC_B);
  await sc.setUp(C, SPEC_C);
  return { host, sc, links };
}

/** Counts the reads of the backend's table and of upstream's `bridge nat`. */
function countReads(sc: SpoofCheck): string[] {
  const reads: string[] = [];
  const wrap = (nft: Interface): Interface => {
    const n = nft as unknown as Record<string, (...args: unknown[]) => unknown>;
    for (const m of ["listElements", "listTable", "listRules", "list", "getElements"]) {
      const orig = n[m]!.bind(nft);
      n[m] = (...args: unknown[]) => {
        reads.push(`${nft.family} ${nft.table} ${m}`);
        return orig(...args);
      };
    }
    return nft;
  };
  wrap(sc.nft);
  const forTable = sc.nft.forTable.bind(sc.nft);
  (sc.nft as { forTable: Interface["forTable"] }).forTable = (f, t) => wrap(forTable(f, t));
  return reads;
}

test("spoof check: ADD writes its two elements and their owner elements, the container's MAC in lower case; no listing", async () => {
  const host = new FakeHost();
  const sc = spoofCheck(host, () => Promise.resolve(new Set()));
  const reads = countReads(sc);
  await sc.setUp(A, SPEC_A);
  await sc.setUp(B, SPEC_B);
  await sc.setUp(C, SPEC_C);
  assert.deepEqual(reads, []);
  assert.equal(await host.dump(), ALL_THREE);
});

test("spoof check: a second ADD changes nothing and reads nothing; with another MAC its old element goes; DEL by the record", async () => {
  const { host, sc } = await attached();
  const reads = countReads(sc);
  await sc.setUp(A, SPEC_A);
  assert.equal(await host.dump(), ALL_THREE);
  await sc.setUp(A, { ...SPEC_A, mac: "0a:58:0a:58:00:99" });
  assert.deepEqual(reads, [], "a repeated ADD asserts its recorded keys");
  assert.equal(
    await host.dump(),
    HEAD +
      elements(
        [ALLOWED_A.replace("00:05", "00:99"), ALLOWED_B, ALLOWED_C],
        [CHECKED_A, CHECKED_B, CHECKED_C],
        // The new allowed element's owner element, in its place in the fake's order.
        [
          OWNERS_C,
          `9fb6ac25b24dfdc . 74ba9cfea19c21d comment "${OWNER_A}", 9fb6ac25b24dfdc . b0f59f312c4eb26 comment "${OWNER_A}"`,
          OWNERS_B,
        ],
      ),
  );
  await sc.remove(A);
  assert.deepEqual(reads, [], "DEL deletes by its record");
  assert.equal(
    await host.dump(),
    HEAD + elements([ALLOWED_B, ALLOWED_C], [CHECKED_B, CHECKED_C], [OWNERS_C, OWNERS_B]),
  );
});

test("spoof check: DEL, DEL again (one listing of upstream's chain by name), and DEL on a host without the table", async () => {
  const { host, sc } = await attached();
  const reads = countReads(sc);
  await sc.remove(B);
  const after = HEAD + elements([ALLOWED_A, ALLOWED_C], [CHECKED_A, CHECKED_C], [OWNERS_C, OWNERS_A]);
  assert.equal(await host.dump(), after);
  await sc.remove(B);
  assert.deepEqual(reads, ["bridge nat listRules"]);
  assert.equal(await host.dump(), after);
  const empty = new FakeHost();
  await spoofCheck(empty, () => Promise.resolve(new Set())).remove(A);
  assert.equal(await empty.dump(), "");
});

test("spoof check: a key another attachment left (its DEL never came) is taken over; that one's DEL then leaves it", async () => {
  const { host, sc } = await attached();
  // D gets B's veth name, as a new container would after B's veth went without a DEL.
  const D = { network: "net1", containerId: "ctr4", ifname: "eth0" };
  await sc.setUp(D, { hostVeth: "veth2", mac: "0a:58:0a:58:00:44" });
  const withD = await host.dump();
  assert.doesNotMatch(withD, /id: ctr2/);
  assert.match(withD, /veth2 \. 0a:58:0a:58:00:44 comment "[^"]*id: ctr4"/);
  await sc.remove(B);
  assert.equal(await host.dump(), withD, "B's stale record cannot delete D's elements");
});

test("spoof check: GC removes this network's checks not in the valid list, and upstream's whose veth is gone", async () => {
  const { host, sc, links } = await attached();
  await sc.gc("net1", [A]);
  assert.equal(
    await host.dump(),
    HEAD + elements([ALLOWED_A, ALLOWED_C], [CHECKED_A, CHECKED_C], [OWNERS_C, OWNERS_A]),
  );
  // Upstream's layout in bridge nat: a check whose veth is gone goes, whatever the network.
  const up = host.nft("bridge", "nat");
  await up.run(upstreamCheck(up.newTransaction().add({ kind: "table" }), "up1-eth0", "vethup1"));
  await up.run(upstreamCheck(up.newTransaction(), "up2-eth0", "vethup2"));
  links.add("vethup2");
  await sc.gc("net1", [A]);
  const left = await up.dump();
  assert.doesNotMatch(left, /up1-eth0/);
  assert.match(left, /iifname "vethup2" jump cni-br-iface-up2-eth0/);
});

test("spoof check: CHECK names the missing element, owner element and rule; a check upstream made passes", async () => {
  const { host, sc } = await attached();
  assert.deepEqual(await sc.check(A, SPEC_A), []);
  assert.deepEqual(await sc.check(A, { ...SPEC_A, mac: "0a:58:0a:58:00:42" }), [
    'spoof-check element "veth1" . 0a:58:0a:58:00:42 in set allowed of table bridge cni_nft_spoofcheck',
  ]);
  const nft = host.nft("bridge", "cni_nft_spoofcheck");
  await nft.run(nft.newTransaction().flush({ kind: "chain", name: "prerouting" }));
  await nft.run(
    nft
      .newTransaction()
      .delete({ kind: "element", set: "owners", key: ['"9fb6ac25b24dfdc"', '"9cd6ccf13cd204f"'] }),
  );
  assert.deepEqual(await sc.check(A, SPEC_A), [
    'rule "iifname @checked iifname . ether saddr != @allowed drop" in chain prerouting of table bridge cni_nft_spoofcheck',
    'the owner element of "veth1" . 0a:58:0a:58:00:05 in set allowed of table bridge cni_nft_spoofcheck',
  ]);
  const up = host.nft("bridge", "nat");
  const U = { network: "net1", containerId: "up1", ifname: "eth0" };
  await up.run(upstreamCheck(up.newTransaction().add({ kind: "table" }), "up1-eth0", "vethup1"));
  assert.deepEqual(await sc.check(U, { hostVeth: "vethup1", mac: "0a:58:0a:58:00:07" }), []);
  await sc.remove(U);
  assert.doesNotMatch(await up.dump(), /up1-eth0/, "DEL without a record of ours removes upstream's");
});

test("spoof check: a MAC that is not one is refused before anything changes", async () => {
  const host = new FakeHost();
  await assert.rejects(spoofCheck(host).setUp(A, { hostVeth: "veth1", mac: "0a:58 drop" }), /invalid MAC/);
  assert.equal(await host.dump(), "");
});

/** Upstream's objects for one check (what upstream's bridge writes in bridge nat). */
function upstreamCheck(tx: Transaction, id: string, veth: string): Transaction {
  const [iface, mac, comment] = [`cni-br-iface-${id}`, `cni-br-iface-${id}-mac`, `macspoofchk-${id}`];
  return tx
    .add({
      kind: "chain",
      name: "PREROUTING",
      type: "filter",
      hook: "prerouting",
      priority: -300,
      policy: "accept",
    })
    .add({ kind: "chain", name: iface })
    .add({ kind: "chain", name: mac })
    .add({ kind: "rule", chain: "PREROUTING", rule: `iifname "${veth}" jump ${iface}`, comment })
    .add({ kind: "rule", chain: iface, rule: `jump ${mac}`, comment })
    .add({ kind: "rule", chain: mac, rule: "ether saddr 0a:58:0a:58:00:07 return", comment })
    .add({ kind: "rule", chain: mac, rule: "drop", comment });
}

const MT = "inet cni_nft_masquerade";
const MASQ = `add table ${MT} { comment "IP masquerade (cni-nft): container address to its subnet's counter" ; }
add counter ${MT} masq4-15f04f2f13e6 { comment "masquerade from 10.88.0.0/24, named by masq4" ; }
add chain ${MT} masq4-15f04f2f13e6 { type nat hook postrouting priority 100 ; policy accept ; }
add map ${MT} masq4 { type ipv4_addr : counter ; }
add map ${MT} masq6 { type ipv6_addr : counter ; }
add set ${MT} owners { type ifname . ifname ; comment "owner tag . element tag, one per element (comment: owner)" ; }
add rule ${MT} masq4-15f04f2f13e6 ip saddr 10.88.0.0/24 ip daddr != 10.88.0.0/24 ip daddr != 224.0.0.0/4 counter name ip saddr map @masq4 masquerade
add element ${MT} masq4 { 10.88.0.5 comment "${OWNER_A}" : masq4-15f04f2f13e6 }
add element ${MT} owners { 9fb6ac25b24dfdc . e665519043636e4 comment "${OWNER_A}" }
`;
const SPOOF_A = HEAD + elements([ALLOWED_A], [CHECKED_A], [OWNERS_A]);
const PLAN = {
  ipMasq: true,
  backend: "nftables" as const,
  addresses: ["10.88.0.5/24"],
  spoof: { hostVeth: "veth1", mac: "0a:58:0a:58:00:05" },
};

test("veth state: masquerade and spoof check on nftables are one atomic run on ADD", async () => {
  const host = new FakeHost();
  let runs = 0;
  const runAll = host.ruleset.apply.bind(host.ruleset);
  host.ruleset.apply = (txs, commit, features) => {
    runs++;
    runAll(txs, commit, features);
  };
  await setUpVethState(host, A, PLAN);
  // The fast path failed (no tables), then one run with the skeletons of both tables.
  assert.equal(runs, 2);
  assert.equal(await host.dump(), SPOOF_A + MASQ);
  await setUpVethState(host, B, { ...PLAN, addresses: ["10.88.0.6/24"], spoof: SPEC_B });
  assert.equal(runs, 3);
  assert.deepEqual(await checkVethState(host, A, PLAN), []);
});

test("veth state: a second ADD of the same attachment changes nothing, on nftables and on iptables", async () => {
  for (const backend of ["nftables", "iptables"] as const) {
    const host = new FakeHost();
    await setUpVethState(host, A, { ...PLAN, backend });
    await setUpVethState(host, B, { ...PLAN, backend, addresses: ["10.88.0.6/24"], spoof: SPEC_B });
    const once = await host.dump();
    await setUpVethState(host, B, { ...PLAN, backend, addresses: ["10.88.0.6/24"], spoof: SPEC_B });
    assert.equal(await host.dump(), once, backend);
    const specB = { ...PLAN, backend, addresses: ["10.88.0.6/24"], spoof: SPEC_B };
    assert.deepEqual(await checkVethState(host, B, specB), [], backend);
  }
});

test("veth state: DEL removes both and GC cleans this network's masquerade", async () => {
  const host = new FakeHost();
  await setUpVethState(host, A, PLAN);
  await setUpVethState(host, B, { ...PLAN, addresses: ["10.88.0.6/24"], spoof: SPEC_B });
  await removeVethState(host, B, { ipMasq: true, spoof: true });
  assert.equal(await host.dump(), SPOOF_A + MASQ);
  await removeVethState(host, B, { ipMasq: true, spoof: true });
  await gcVethState(host, "net1", [], () => Promise.resolve(new Set()));
  assert.equal(
    await host.dump(),
    HEAD +
      MASQ.split("\n")
        // The element, its owner element and the subnet's counter and chain nothing names any more.
        .filter((l) => !l.includes("ctr1") && !l.includes("masq4-"))
        .join("\n"),
  );
});

test("veth state: iptables masquerade and the spoof check together", async () => {
  const host = new FakeHost();
  await setUpVethState(host, A, { ...PLAN, backend: "iptables" });
  assert.equal(host.iptables.restores.length, 1);
  assert.deepEqual(await checkVethState(host, A, { ...PLAN, backend: "iptables" }), []);
  await removeVethState(host, A, { ipMasq: true, spoof: true });
  assert.equal(
    await host.dump(),
    HEAD +
      `# iptables
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
`,
  );
});
