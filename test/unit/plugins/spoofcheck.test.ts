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
import type { SpoofSpec } from "../../../src/link/spoofcheck.js";

const A = { network: "net1", containerId: "ctr1", ifname: "eth0" };
const B = { network: "net1", containerId: "ctr2", ifname: "eth0" };
/** Another network: the bridge nat table is shared, so GC judges a check by its veth. */
const C = { network: "net2", containerId: "ctr3", ifname: "eth0" };
const SPEC_A: SpoofSpec = { hostVeth: "veth1", mac: "0A:58:0A:58:00:05" };
const SPEC_B: SpoofSpec = { hostVeth: "veth2", mac: "0a:58:0a:58:00:06" };
const SPEC_C: SpoofSpec = { hostVeth: "veth3", mac: "0a:58:0a:63:00:07" };

const HEAD = `add table bridge nat
add chain bridge nat PREROUTING { type filter hook prerouting priority -300 ; policy accept ; }
`;
const chains = (id: string): string =>
  `add chain bridge nat cni-br-iface-${id}\nadd chain bridge nat cni-br-iface-${id}-mac\n`;
const jump = (id: string, veth: string): string =>
  `add rule bridge nat PREROUTING iifname "${veth}" jump cni-br-iface-${id} comment "macspoofchk-${id}"\n`;
const rules = (
  id: string,
  mac: string,
): string => `add rule bridge nat cni-br-iface-${id} jump cni-br-iface-${id}-mac comment "macspoofchk-${id}"
add rule bridge nat cni-br-iface-${id}-mac ether saddr ${mac} return comment "macspoofchk-${id}"
add rule bridge nat cni-br-iface-${id}-mac drop comment "macspoofchk-${id}"
`;
const A_ID = "ctr1-eth0";
const B_ID = "ctr2-eth0";
const C_ID = "ctr3-eth0";

async function attached(links = new Set(["veth1", "veth2", "veth3"])) {
  const host = new FakeHost();
  const sc = spoofCheck(host, () => Promise.resolve(links));
  await sc.setUp(A, SPEC_A);
  await sc.setUp(B, SPEC_B);
  await sc.setUp(C, SPEC_C);
  return { host, sc, links };
}

test("spoof check: ADD writes upstream's chains, the container's MAC in lower case", async () => {
  const { host } = await attached();
  assert.equal(
    await host.dump(),
    HEAD +
      chains(A_ID) +
      chains(B_ID) +
      chains(C_ID) +
      jump(A_ID, "veth1") +
      jump(B_ID, "veth2") +
      jump(C_ID, "veth3") +
      rules(A_ID, "0a:58:0a:58:00:05") +
      rules(B_ID, "0a:58:0a:58:00:06") +
      rules(C_ID, "0a:58:0a:63:00:07"),
  );
});

test("spoof check: a second ADD rewrites its chains and replaces its jump (one copy); DEL removes them", async () => {
  const { host, sc } = await attached();
  await sc.setUp(A, { ...SPEC_A, mac: "0a:58:0a:58:00:99" });
  assert.equal(
    await host.dump(),
    HEAD +
      chains(A_ID) +
      chains(B_ID) +
      chains(C_ID) +
      jump(B_ID, "veth2") +
      jump(C_ID, "veth3") +
      jump(A_ID, "veth1") +
      rules(A_ID, "0a:58:0a:58:00:99") +
      rules(B_ID, "0a:58:0a:58:00:06") +
      rules(C_ID, "0a:58:0a:63:00:07"),
  );
  await sc.remove(A);
  assert.equal(
    await host.dump(),
    HEAD +
      chains(B_ID) +
      chains(C_ID) +
      jump(B_ID, "veth2") +
      jump(C_ID, "veth3") +
      rules(B_ID, "0a:58:0a:58:00:06") +
      rules(C_ID, "0a:58:0a:63:00:07"),
  );
});

test("spoof check: DEL, DEL again, and DEL on a host without the table", async () => {
  const { host, sc } = await attached();
  await sc.remove(B);
  const after =
    HEAD +
    chains(A_ID) +
    chains(C_ID) +
    jump(A_ID, "veth1") +
    jump(C_ID, "veth3") +
    rules(A_ID, "0a:58:0a:58:00:05") +
    rules(C_ID, "0a:58:0a:63:00:07");
  assert.equal(await host.dump(), after);
  await sc.remove(B);
  assert.equal(await host.dump(), after);
  const empty = new FakeHost();
  await spoofCheck(empty, () => Promise.resolve(new Set())).remove(A);
  assert.equal(await empty.dump(), "");
});

test("spoof check: GC removes checks not in the valid list whose host veth is gone, of any network", async () => {
  const { host, sc, links } = await attached();
  links.delete("veth1");
  links.delete("veth3");
  // A is valid (its veth is only momentarily gone), C is of another network and its veth is gone.
  await sc.gc("net1", [A]);
  assert.equal(
    await host.dump(),
    HEAD +
      chains(A_ID) +
      chains(B_ID) +
      jump(A_ID, "veth1") +
      jump(B_ID, "veth2") +
      rules(A_ID, "0a:58:0a:58:00:05") +
      rules(B_ID, "0a:58:0a:58:00:06"),
  );
});

test("spoof check: CHECK names the missing jump, chain and MAC rule", async () => {
  const { host, sc } = await attached();
  assert.deepEqual(await sc.check(A, SPEC_A), []);
  assert.deepEqual(await sc.check(A, { ...SPEC_A, mac: "0a:58:0a:58:00:42" }), [
    "spoof-check rule allowing 0a:58:0a:58:00:42 in chain cni-br-iface-ctr1-eth0-mac",
  ]);
  const nft = host.nft("bridge", "nat");
  const j = (await nft.listRules("PREROUTING")).find((r) => r.comment === `macspoofchk-${A_ID}`)!;
  await nft.run(
    nft
      .newTransaction()
      .delete({ kind: "rule", chain: "PREROUTING", rule: "", handle: j.handle! })
      .flush({ kind: "chain", name: `cni-br-iface-${A_ID}` })
      .flush({ kind: "chain", name: `cni-br-iface-${A_ID}-mac` })
      .delete({ kind: "chain", name: `cni-br-iface-${A_ID}-mac` }),
  );
  assert.deepEqual(await sc.check(A, SPEC_A), [
    "spoof-check jump rule in bridge nat PREROUTING",
    "spoof-check chain cni-br-iface-ctr1-eth0-mac",
  ]);
});

test("spoof check: a MAC that is not one is refused before anything changes", async () => {
  const host = new FakeHost();
  await assert.rejects(spoofCheck(host).setUp(A, { hostVeth: "veth1", mac: "0a:58 drop" }), /invalid MAC/);
  assert.equal(await host.dump(), "");
});

const MT = "inet cni_nft_masquerade";
const OWNER_A = "8e48f37d5de60467-7883a6f9ce71eedb, net: net1, if: eth0, id: ctr1";
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
  assert.equal(
    await host.dump(),
    HEAD + chains(A_ID) + jump(A_ID, "veth1") + rules(A_ID, "0a:58:0a:58:00:05") + MASQ,
  );
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
  assert.equal(
    await host.dump(),
    HEAD + chains(A_ID) + jump(A_ID, "veth1") + rules(A_ID, "0a:58:0a:58:00:05") + MASQ,
  );
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
