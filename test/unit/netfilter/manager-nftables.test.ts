/** The manager on the nftables backend over the library's fake: literal dumps and transactions. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { securityGroup } from "./security-group.js";
import { FakeNFTables } from "../../../src/nftables/fake.js";
import type { Transaction } from "../../../src/nftables/index.js";
import {
  createNetfilterManager,
  isNetfilterError,
  type NetfilterManager,
} from "../../../src/netfilter/index.js";

interface Kernel {
  ip: FakeNFTables;
  ip6: FakeNFTables;
  /** Text of every transaction run, in order. */
  sent: string[];
  failNext: boolean;
}

function kernel(): Kernel {
  const k = { sent: [] as string[], failNext: false } as Kernel;
  // One connection (as the real NFTables): both families' tables, every apply one runAll.
  k.ip = new FakeNFTables({ family: "ip", table: "agent" });
  k.ip6 = k.ip.forTable("ip6", "agent");
  const runAll = k.ip.runAll.bind(k.ip);
  k.ip.runAll = async (txs: readonly Transaction[]) => {
    if (k.failNext) {
      k.failNext = false;
      throw new Error("injected failure");
    }
    k.sent.push(...txs.map((tx) => tx.render().text));
    await runAll(txs);
  };
  return k;
}

function manager(k: Kernel): NetfilterManager {
  return createNetfilterManager({ owner: "agent", backend: "nftables", nft: k.ip });
}

const FIRST_DUMP = `add table ip agent { comment "netfilter manager of agent" ; }
add chain ip agent filter-INPUT { type filter hook input priority 0 ; policy accept ; }
add chain ip agent filter-sg-1
add chain ip agent nat-POSTROUTING { type nat hook postrouting priority 100 ; policy accept ; }
add set ip agent allowed { type ipv4_addr ; flags interval ; }
add rule ip agent filter-INPUT ct state related,established counter accept comment "nfm:7627e03d09c2"
add rule ip agent filter-INPUT counter jump filter-sg-1 comment "nfm:7785524737fa"
add rule ip agent filter-sg-1 tcp dport 22 ip saddr @allowed counter accept comment "ssh nfm:74e346eddf1a"
add rule ip agent filter-sg-1 counter drop comment "nfm:69c9a1973dac"
add rule ip agent nat-POSTROUTING ip saddr 10.88.0.0/16 oifname != "cni0" counter masquerade comment "nfm:20ecb0fa75b0"
add element ip agent allowed { 10.0.0.0/8, 192.168.1.7 }
`;

test("first apply: the owner's table, base chains at iptables' hooks and priorities, a set, marked rules", async () => {
  const k = kernel();
  const m = manager(k);
  securityGroup(m);
  const stats = await m.apply();
  assert.equal(await k.ip.dump(), FIRST_DUMP);
  // One read per family and one run, as on the kernel.
  assert.deepEqual(stats, { processes: 3, readState: true, chainsChanged: 3, setsChanged: 1 });
  assert.equal(k.sent.length, 1, "nothing for IPv6, which has no rules: no ip6 table");
  await assert.rejects(k.ip6.list("chains"), /No such file|ENOENT|does not exist/i);
});

test("partial sync: one rule and one member change send one delete and one add each", async () => {
  const k = kernel();
  const m = manager(k);
  securityGroup(m);
  await m.apply();
  k.sent.length = 0;
  m.ipv4.filter.removeRule("sg-1", "-j DROP");
  m.ipv4.filter.addRule("sg-1", "-j REJECT");
  m.setMembers("allowed", 4, ["10.0.0.0/8", "192.168.1.8"]);
  const stats = await m.apply();
  assert.deepEqual(k.sent, [
    `delete element ip agent allowed { 192.168.1.7 }
add element ip agent allowed { 192.168.1.8 }
delete rule ip agent filter-sg-1 handle 8
add rule ip agent filter-sg-1 counter reject comment "nfm:37906a3c4436"
`,
  ]);
  assert.equal(stats?.chainsChanged, 1);
  // A rule inserted at the top goes before the first rule, whose handle came from the kernel.
  k.sent.length = 0;
  m.ipv4.filter.addRule("sg-1", "-p tcp --dport 80 -j ACCEPT", { top: true });
  assert.equal((await m.apply())?.processes, 1);
  assert.deepEqual(k.sent, [
    'insert rule ip agent filter-sg-1 handle 7 tcp dport 80 counter accept comment "nfm:9f99ee017f19"\n',
  ]);
  // Deleting the rule added last needs its handle: one listing of that chain gives it.
  k.sent.length = 0;
  m.ipv4.filter.removeRule("sg-1", "-j REJECT");
  assert.equal((await m.apply())?.processes, 2);
  assert.deepEqual(k.sent, ["delete rule ip agent filter-sg-1 handle 10\n"]);
  // Nothing changed: nothing sent, no process.
  k.sent.length = 0;
  assert.deepEqual(await m.apply(), { processes: 0, readState: false, chainsChanged: 0, setsChanged: 0 });
  assert.deepEqual(k.sent, []);
});

test("a restarted owner reads the kernel once and sends nothing when its state is there", async () => {
  const k = kernel();
  const first = manager(k);
  securityGroup(first);
  await first.apply();
  k.sent.length = 0;
  const again = manager(k);
  securityGroup(again);
  const stats = await again.apply();
  // Base chains are declared again once (their policy is not read back); nothing else is sent.
  assert.deepEqual(k.sent, [
    `add chain ip agent filter-INPUT { type filter hook input priority 0 ; policy accept ; }
add chain ip agent nat-POSTROUTING { type nat hook postrouting priority 100 ; policy accept ; }
`,
  ]);
  k.sent.length = 0;
  assert.equal(stats?.readState, true);
  assert.equal(await k.ip.dump(), FIRST_DUMP);
  // And picks up from there: a new rule is one command.
  again.ipv4.filter.addRule("INPUT", "-i lo -j ACCEPT");
  await again.apply();
  assert.deepEqual(k.sent, [
    'add rule ip agent filter-INPUT iifname "lo" counter accept comment "nfm:91161bcac14e"\n',
  ]);
});

test("removeChain cascades to jumps, clearRulesByTag and emptyChain; an empty built-in chain goes", async () => {
  const k = kernel();
  const m = manager(k);
  securityGroup(m);
  await m.apply();
  m.ipv4.filter.clearRulesByTag("ssh");
  m.ipv4.filter.removeChain("sg-1");
  m.ipv4.nat.emptyChain("POSTROUTING");
  await m.apply();
  assert.equal(
    await k.ip.dump(),
    `add table ip agent { comment "netfilter manager of agent" ; }
add chain ip agent filter-INPUT { type filter hook input priority 0 ; policy accept ; }
add set ip agent allowed { type ipv4_addr ; flags interval ; }
add rule ip agent filter-INPUT ct state related,established counter accept comment "nfm:7627e03d09c2"
add element ip agent allowed { 10.0.0.0/8, 192.168.1.7 }
`,
  );
  assert.deepEqual(
    m.ipv4.filter.getChain("INPUT").map((r) => r.rule),
    ["-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"],
  );
  m.removeSet("allowed", 4);
  await m.destroy();
  await assert.rejects(k.ip.list("chains"));
});

test("a failed apply changes nothing and the next one reads the kernel and sends everything", async () => {
  const k = kernel();
  const m = manager(k);
  securityGroup(m);
  k.failNext = true;
  await assert.rejects(
    m.apply(),
    (e: unknown) => isNetfilterError(e, "EAPPLY") && /injected failure/.test((e as Error).message),
  );
  await assert.rejects(k.ip.list("chains"));
  const stats = await m.apply();
  assert.equal(stats?.readState, true);
  assert.equal(await k.ip.dump(), FIRST_DUMP);
});

test("policies of built-in chains (nftables only) and IPv6", async () => {
  const k = kernel();
  const m = manager(k);
  m.ipv6.filter.setPolicy("INPUT", "DROP");
  m.ipv6.filter.addRule("INPUT", "-p ipv6-icmp -j ACCEPT");
  m.ipv6.raw.addRule("PREROUTING", "-p udp --dport 53 -j CT --notrack");
  m.ipv6.mangle.addRule("OUTPUT", "-j MARK --set-mark 0x1");
  await m.apply();
  assert.equal(
    await k.ip6.dump(),
    `add table ip6 agent { comment "netfilter manager of agent" ; }
add chain ip6 agent filter-INPUT { type filter hook input priority 0 ; policy drop ; }
add chain ip6 agent mangle-OUTPUT { type route hook output priority -150 ; policy accept ; }
add chain ip6 agent raw-PREROUTING { type filter hook prerouting priority -300 ; policy accept ; }
add rule ip6 agent filter-INPUT meta l4proto icmpv6 counter accept comment "nfm:ec931f54d827"
add rule ip6 agent mangle-OUTPUT counter meta mark set 0x00000001 comment "nfm:682f7138bc4b"
add rule ip6 agent raw-PREROUTING udp dport 53 counter notrack comment "nfm:588c55abcdbd"
`,
  );
});

test("what the manager refuses, before anything runs", () => {
  const m = manager(kernel());
  assert.throws(
    () => m.ipv4.filter.addRule("nope", "-j ACCEPT"),
    (e: unknown) => isNetfilterError(e, "ENOCHAIN"),
  );
  assert.throws(
    () => m.ipv4.filter.addRule("INPUT", "-j $nope"),
    /neither a target .* nor one of the owner's chains/,
  );
  assert.throws(
    () => m.ipv4.filter.addRule("INPUT", "-m set --match-set s src -j DROP"),
    /set "s" is not declared/,
  );
  m.setMembers("s", 4, ["10.0.0.1"], "hash:ip");
  assert.throws(() => m.setMembers("s", 4, ["10.0.0.0/8"], "hash:net"), /exists as hash:ip/);
  assert.throws(
    () => m.setMembers("n", 4, ["10.0.0.0/8", "10.1.0.0/16"]),
    /10\.0\.0\.0\/8 and 10\.1\.0\.0\/16 overlap/,
  );
  assert.throws(() => m.setMembers("n", 4, ["fd00::1"]), /not an IPv4 address or prefix/);
  m.ipv4.filter.addRule("INPUT", "-m set --match-set s src -j DROP");
  assert.throws(() => m.removeSet("s", 4), /still match it/);
  assert.throws(() => m.ipv4.filter.addChain("bad name"), /chain/);
  assert.throws(() => m.ipv4.filter.removeChain("INPUT"), /built in/);
  assert.throws(
    () => createNetfilterManager({ owner: "no spaces", backend: "nftables", nft: kernel().ip }),
    /owner/,
  );
  assert.throws(() => createNetfilterManager({ owner: "agent", backend: "nftables" }), /option nft/);
  assert.throws(() => m.ipv4.filter.addRule("INPUT", "-j ACCEPT", { comment: 'a "quote"' }), /comment/);
});
