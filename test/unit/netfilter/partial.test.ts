/** The pieces of partial sync: the rule diff, canonical set members, reading save files back. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { diffRules, handlesNeeded } from "../../../src/netfilter/rule-diff.js";
import { canonicalMember, canonicalMembers, memberFromNftKey, nftKey } from "../../../src/netfilter/sets.js";
import { parseIpsetSave } from "../../../src/netfilter/ipset.js";
import { parseSave } from "../../../src/netfilter/iptables-backend.js";
import type { SetType } from "../../../src/netfilter/types.js";

const kernel = (keys: string): Array<{ key: string; handle: number }> =>
  [...keys].map((key, i) => ({ key, handle: 100 + i }));

/** [kernel keys, wanted keys, deletes (kernel indices), inserts as "wanted@before" ("$" = append)] */
const DIFFS: Array<[string, string, number[], string[]]> = [
  ["abc", "abc", [], []],
  ["", "abc", [], ["0@$", "1@$", "2@$"]],
  ["abc", "", [0, 1, 2], []],
  ["abc", "abxc", [], ["2@2"]],
  ["abc", "xabc", [], ["0@0"]],
  ["abc", "abcx", [], ["3@$"]],
  ["abc", "ac", [1], []],
  ["abc", "axc", [1], ["1@2"]],
  ["abcd", "dabc", [3], ["0@0"]],
  ["aab", "ab", [1], []],
];

for (const [have, want, deletes, inserts] of DIFFS)
  test(`diff ${have || "∅"} → ${want || "∅"}`, () => {
    const d = diffRules(kernel(have), [...want]);
    assert.deepEqual(d.deletes, deletes);
    assert.deepEqual(
      d.inserts.map((i) => `${i.want}@${i.before ?? "$"}`),
      inserts,
    );
  });

test("a diff needs only the handles of deleted rules and of the rules new ones go before", () => {
  const d = diffRules(kernel("abcdef"), [..."abXcdf"]);
  assert.deepEqual(handlesNeeded(d).sort(), [2, 4]);
  // A rule the manager did not write (no key) is never kept.
  const foreign = diffRules(
    [
      { key: undefined, handle: 1 },
      { key: "a", handle: 2 },
    ],
    ["a"],
  );
  assert.deepEqual(foreign.deletes, [0]);
});

const MEMBERS: Array<[SetType, 4 | 6, string, string, string[]]> = [
  ["hash:ip", 4, "10.0.0.1", "10.0.0.1", ["10.0.0.1"]],
  ["hash:net", 4, "10.0.0.5/24", "10.0.0.0/24", ["10.0.0.0/24"]],
  ["hash:net", 4, "192.168.1.7/32", "192.168.1.7", ["192.168.1.7"]],
  ["hash:net", 6, "fd00:0:0:0::1/64", "fd00::/64", ["fd00::/64"]],
  ["hash:ip", 6, "FD00::0001", "fd00::1", ["fd00::1"]],
  ["hash:ip,port", 4, "10.0.0.1,udp:53", "10.0.0.1,udp:53", ["10.0.0.1", "udp", "53"]],
  ["hash:ip,port", 4, "10.0.0.1,80", "10.0.0.1,tcp:80", ["10.0.0.1", "tcp", "80"]],
  ["hash:net,iface", 4, "10.1.0.0/16,veth1", "10.1.0.0/16,veth1", ["10.1.0.0/16", '"veth1"']],
];

for (const [type, family, given, canonical, key] of MEMBERS)
  test(`${type} IPv${family}: ${given} is ${canonical}, nft key ${key.join(" . ")}, and back`, () => {
    assert.equal(canonicalMember(type, family, given).text, canonical);
    assert.deepEqual(nftKey(type, canonical), key);
    assert.equal(
      memberFromNftKey(
        type,
        family,
        key.map((k) => k.replace(/"/g, "")),
      ),
      canonical,
    );
  });

test("members refused: bad text, the wrong family, overlaps (with the two named)", () => {
  assert.throws(() => canonicalMembers("s", "hash:ip", 4, ["10.0.0.0/24"]), /not an IPv4 address/);
  assert.throws(() => canonicalMembers("s", "hash:ip", 4, ["010.0.0.1"]), /not an IPv4 address/);
  assert.throws(() => canonicalMembers("s", "hash:net", 6, ["10.0.0.0/8"]), /not an IPv6/);
  assert.throws(() => canonicalMembers("s", "hash:ip,port", 4, ["10.0.0.1,icmp:1"]), /PROTO:PORT/);
  assert.throws(
    () => canonicalMembers("s", "hash:net", 4, ["10.0.0.0/8", "10.2.3.4"]),
    /10\.0\.0\.0\/8 and 10\.2\.3\.4 overlap/,
  );
  // The same prefix on two interfaces is not an overlap.
  assert.equal(canonicalMembers("s", "hash:net,iface", 4, ["10.0.0.0/8,a", "10.0.0.0/8,b"]).size, 2);
  assert.equal(canonicalMembers("s", "hash:ip", 4, ["10.0.0.1", "10.0.0.1"]).size, 1);
});

test("ipset save and iptables-save read back: only the owner's sets, chains, keys and jumps", () => {
  const sets = parseIpsetSave(
    `create agent-v4-a hash:net family inet hashsize 1024 maxelem 65536
add agent-v4-a 10.0.0.0/8
add agent-v4-a 192.168.1.7
create agent-v6-b hash:ip family inet6 hashsize 1024 maxelem 65536
add agent-v6-b fd00::1
create other x
add other 1
`,
    "agent-",
  );
  assert.deepEqual([...sets.keys()], ["agent-v4-a", "agent-v6-b"]);
  assert.deepEqual([...sets.get("agent-v4-a")!.members], ["10.0.0.0/8", "192.168.1.7"]);
  assert.equal(sets.get("agent-v6-b")!.family, 6);
  const tables = parseSave(
    `*filter
:INPUT ACCEPT [0:0]
:agent-INPUT - [0:0]
:other-INPUT - [0:0]
-A INPUT -j other-INPUT
-A INPUT -j agent-INPUT
-A agent-INPUT -m comment --comment "ssh nfm:0123456789ab" -j ACCEPT
-A agent-INPUT -m comment --comment nfm:ba9876543210 -j DROP
-A agent-INPUT -j ACCEPT
COMMIT
`,
    "agent-",
  );
  const filter = tables.get("filter")!;
  assert.deepEqual([...filter.chains], [["agent-INPUT", ["0123456789ab", "ba9876543210", undefined]]]);
  assert.deepEqual([...filter.jumps], ["INPUT"]);
});
