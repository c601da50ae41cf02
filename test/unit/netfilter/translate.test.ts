/** The iptables rule language into nft text, case by case, against literal expected text. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { translateRule, type TranslateContext } from "../../../src/netfilter/translate.js";
import { isUnsupported, TranslationError } from "../../../src/netfilter/errors.js";
import type { SetType } from "../../../src/netfilter/types.js";

const SETS: Record<string, SetType> = {
  allowed: "hash:net",
  hosts: "hash:ip",
  svc: "hash:ip,port",
  nets: "hash:net,iface",
};
const base: TranslateContext = {
  family: 4,
  table: "filter",
  chainRef: (n) => (["services", "sg-1", "DOCKER"].includes(n) ? `filter-${n}` : undefined),
  setType: (n) => SETS[n],
};

type Case = [rule: string, nft: string, ctx?: Partial<TranslateContext>];
const nat = { table: "nat" as const };
const mangle = { table: "mangle" as const };
const v6 = { family: 6 as const };

const CASES: Case[] = [
  // addresses, interfaces, protocols
  ["-s 10.0.0.0/8 -j ACCEPT", "ip saddr 10.0.0.0/8 counter accept"],
  ["! -d 10.1.2.3/255.255.0.0 -j DROP", "ip daddr != 10.1.0.0/16 counter drop"],
  ["-s 10.0.0.7/32 -d 0.0.0.0/0", "ip saddr 10.0.0.7 counter"],
  ["-s 10.0.0.1,10.0.0.2 -j RETURN", "ip saddr { 10.0.0.1, 10.0.0.2 } counter return"],
  ["-s fd00::1/64 -j ACCEPT", "ip6 saddr fd00::/64 counter accept", v6],
  ["-i eth0 -o veth+ -j ACCEPT", 'iifname "eth0" oifname "veth*" counter accept'],
  ["! -i docker0 -i +", 'iifname != "docker0" counter'],
  ["-p tcp -j ACCEPT", "meta l4proto tcp counter accept"],
  ["! -p udp -j DROP", "meta l4proto != udp counter drop"],
  ["-p 47 -j ACCEPT", "meta l4proto gre counter accept"],
  ["-p all -j ACCEPT", "counter accept"],
  ["-p ipv6-icmp -j ACCEPT", "meta l4proto icmpv6 counter accept", v6],
  ["-f -j DROP", "ip frag-off & 0x1fff != 0 counter drop"],
  // tcp, udp, sctp, multiport
  ["-p tcp -m tcp --dport 22 -j ACCEPT", "tcp dport 22 counter accept"],
  ["-p tcp --sport 1024: --dport :1023", "tcp sport 1024-65535 tcp dport 0-1023 counter"],
  ["-p udp -m udp ! --dport 53 -j DROP", "udp dport != 53 counter drop"],
  ["-p sctp -m sctp --dport 3868", "sctp dport 3868 counter"],
  ["-p tcp --syn -j DROP", "tcp flags & (fin|syn|rst|ack) == syn counter drop"],
  ["-p tcp ! --syn", "tcp flags & (fin|syn|rst|ack) != syn counter"],
  ["-p tcp --tcp-flags SYN,RST SYN", "tcp flags & (syn|rst) == syn counter"],
  ["-p tcp --tcp-flags ALL NONE -j DROP", "tcp flags & (fin|syn|rst|psh|ack|urg|ecn|cwr) == 0 counter drop"],
  [
    "-p tcp -m multiport --dports 80,443,8000:8080 -j ACCEPT",
    "tcp dport { 80, 443, 8000-8080 } counter accept",
  ],
  ["-p udp -m multiport ! --sports 67,68", "udp sport != { 67, 68 } counter"],
  // conntrack, state
  ["-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "ct state related,established counter accept"],
  ["-m state --state INVALID -j DROP", "ct state invalid counter drop"],
  ["-m conntrack ! --ctstate NEW,UNTRACKED", "ct state != new,untracked counter"],
  ["-m conntrack --ctstate DNAT -j ACCEPT", "ct status dnat counter accept"],
  [
    "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
    "ct state != related,established ct status != dnat counter drop",
  ],
  ["-p tcp -m tcp -j DNAT --to-destination 10.0.0.3:53", "meta l4proto tcp counter dnat to 10.0.0.3:53", nat],
  ["-m conntrack --ctstatus ASSURED,SEEN_REPLY", "ct status assured,seen-reply counter"],
  [
    "-m conntrack --ctorigdst 10.96.0.1 --ctdir ORIGINAL",
    "ct original ip daddr 10.96.0.1 ct direction original counter",
  ],
  ["-m conntrack --ctproto tcp --ctorigdstport 80", "ct protocol tcp ct original proto-dst 80 counter"],
  // comment, mark, connmark, addrtype
  ['-m comment --comment "allow ssh" -p tcp --dport 22 -j ACCEPT', "tcp dport 22 counter accept"],
  ["-m mark --mark 0x4000/0x4000 -j ACCEPT", "meta mark & 0x00004000 == 0x00004000 counter accept"],
  ["-m mark ! --mark 0x1 -j DROP", "meta mark != 0x00000001 counter drop"],
  ["-m connmark --mark 0x10 -j ACCEPT", "ct mark 0x00000010 counter accept"],
  ["-m addrtype --dst-type LOCAL -j $services", "fib daddr type local counter jump filter-services"],
  ["-m addrtype ! --src-type LOCAL,BROADCAST", "fib saddr type != { local, broadcast } counter"],
  ["-m addrtype --dst-type LOCAL --limit-iface-in", "fib daddr . iif type local counter"],
  // icmp, icmp6
  ["-p icmp --icmp-type echo-request -j ACCEPT", "icmp type echo-request counter accept"],
  [
    "-p icmp -m icmp --icmp-type 3/4 -j ACCEPT",
    "icmp type destination-unreachable icmp code 4 counter accept",
  ],
  ["-p icmp -m icmp ! --icmp-type 8", "icmp type != echo-request counter"],
  [
    "-p ipv6-icmp -m icmp6 --icmpv6-type neighbour-solicitation -j ACCEPT",
    "icmpv6 type nd-neighbor-solicit counter accept",
    v6,
  ],
  ["-p icmpv6 --icmpv6-type 128", "icmpv6 type echo-request counter", v6],
  // limit, set, owner, iprange, statistic
  [
    "-m limit --limit 5/min --limit-burst 10 -j ACCEPT",
    "limit rate 5/minute burst 10 packets counter accept",
  ],
  ["-m limit -j LOG", "limit rate 3/hour burst 5 packets counter log"],
  ["-m set --match-set allowed src -j ACCEPT", "ip saddr @allowed counter accept"],
  ["-m set ! --match-set hosts dst -j DROP", "ip daddr != @hosts counter drop"],
  ["-m set --match-set svc dst,dst -j ACCEPT", "ip daddr . meta l4proto . th dport @svc counter accept"],
  ["-m set --match-set nets src,src -j RETURN", "ip saddr . iifname @nets counter return"],
  ["-m owner --uid-owner 1000 -j ACCEPT", "meta skuid 1000 counter accept", { chain: "OUTPUT" }],
  ["-m owner ! --gid-owner 100-200", "meta skgid != 100-200 counter"],
  ["-m iprange --src-range 10.0.0.1-10.0.0.9 -j ACCEPT", "ip saddr 10.0.0.1-10.0.0.9 counter accept"],
  [
    "-m statistic --mode random --probability 0.5 -j $sg-1",
    "numgen random mod 2147483648 < 1073741824 counter jump filter-sg-1",
  ],
  ["-m statistic --mode nth --every 3 --packet 1", "numgen inc mod 3 1 counter"],
  [
    "-m physdev --physdev-in tap1 --physdev-is-bridged -j ACCEPT",
    'iifname "tap1" counter accept',
    { bridge: true },
  ],
  [
    "-s 10.0.0.7/32 -m mac --mac-source FA:16:3E:5A:2B:1C -j RETURN",
    "ip saddr 10.0.0.7 ether saddr fa:16:3e:5a:2b:1c counter return",
  ],
  // targets
  ["-j REJECT", "counter reject"],
  ["-j REJECT --reject-with icmp-host-prohibited", "counter reject with icmp type host-prohibited"],
  ["-j REJECT --reject-with icmp6-adm-prohibited", "counter reject with icmpv6 type admin-prohibited", v6],
  ["-p tcp -j REJECT --reject-with tcp-reset", "meta l4proto tcp counter reject with tcp reset"],
  ["-g DOCKER", "counter goto filter-DOCKER"],
  ["-j DOCKER", "counter jump filter-DOCKER"],
  [
    '-j LOG --log-prefix "drop: " --log-level warning --log-tcp-options --log-uid',
    'counter log prefix "drop: " level warn flags tcp options flags skuid',
  ],
  [
    "-p tcp --dport 80 -j DNAT --to-destination 10.0.0.2:8080",
    "tcp dport 80 counter dnat to 10.0.0.2:8080",
    { ...nat, chain: "PREROUTING" },
  ],
  [
    "-j DNAT --to-destination 10.0.0.2-10.0.0.4 --persistent",
    "counter dnat to 10.0.0.2-10.0.0.4 persistent",
    nat,
  ],
  [
    "-p tcp -j DNAT --to-destination [fd00::2]:80",
    "meta l4proto tcp counter dnat to [fd00::2]:80",
    { ...nat, ...v6 },
  ],
  [
    "-s 10.0.0.0/24 -j SNAT --to-source 192.0.2.1 --random-fully",
    "ip saddr 10.0.0.0/24 counter snat to 192.0.2.1 fully-random",
    nat,
  ],
  [
    "-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
    'ip saddr 172.17.0.0/16 oifname != "docker0" counter masquerade',
    nat,
  ],
  ["-p tcp -j MASQUERADE --to-ports 1024-65535", "meta l4proto tcp counter masquerade to :1024-65535", nat],
  ["-p tcp --dport 80 -j REDIRECT --to-ports 8080", "tcp dport 80 counter redirect to :8080", nat],
  ["-p udp --dport 53 -j NOTRACK", "udp dport 53 counter notrack", { table: "raw" }],
  ["-j CT --notrack", "counter notrack", { table: "raw" }],
  ["-j CT --zone 7", "counter ct zone set 7", { table: "raw" }],
  ["-j MARK --set-mark 0x1", "counter meta mark set 0x00000001", mangle],
  ["-j MARK --set-xmark 0x4000/0x4000", "counter meta mark set meta mark & 0xffffbfff ^ 0x00004000", mangle],
  ["-j MARK --set-mark 0x100/0xff00", "counter meta mark set meta mark & 0xffff00ff | 0x00000100", mangle],
  ["-j MARK --or-mark 0x4000", "counter meta mark set meta mark | 0x00004000", nat],
  ["-j CONNMARK --save-mark", "counter ct mark set meta mark", mangle],
  ["-j CONNMARK --restore-mark --mask 0xffffffff", "counter meta mark set ct mark", mangle],
  ["-j CONNMARK --set-mark 0x2", "counter ct mark set 0x00000002", mangle],
  ["-p udp -m udp --dport 68 -j CHECKSUM --checksum-fill", "udp dport 68 counter udp checksum set 0", mangle],
];

for (const [rule, nft, ctx] of CASES)
  test(`${ctx?.family === 6 ? "ip6tables" : "iptables"} ${ctx?.table ?? "filter"}: ${rule}`, () => {
    assert.equal(translateRule(rule, { ...base, ...ctx }).nftCounted, nft);
  });

test("comments, jumps and sets are reported beside the text; the plain form has no counter", () => {
  const r = translateRule('-m comment --comment "web" -m set --match-set allowed src -j $services', base);
  assert.deepEqual(
    { nft: r.nft, comments: r.comments, jumps: r.jumps, sets: r.sets, target: r.target },
    {
      nft: "ip saddr @allowed jump filter-services",
      comments: ["web"],
      jumps: ["services"],
      sets: ["allowed"],
      target: "services",
    },
  );
  assert.deepEqual(r.args, [
    "-m",
    "comment",
    "--comment",
    "web",
    "-m",
    "set",
    "--match-set",
    { set: "allowed" },
    "src",
    "-j",
    { chain: "services" },
  ]);
});

/** Refused: the error names the rule and the part, and says the nft way where there is one. */
const REFUSED: Array<[rule: string, part: string, says: RegExp, ctx?: Partial<TranslateContext>]> = [
  ["-m recent --set -j DROP", "-m recent", /dynamic set/],
  [
    "-m mac --mac-source 02:00:00:00:00:01 -j DROP",
    "-m mac",
    /only for received packets/,
    { chain: "OUTPUT" },
  ],
  ["-m hashlimit --hashlimit 1/s", "-m hashlimit", /meter/],
  ["-m string --string foo --algo bm", "-m string", /no payload string search/],
  ["-m foo --bar", "-m foo", /unknown match/],
  ["-j TCPMSS --clamp-mss-to-pmtu", "-j TCPMSS", /maxseg size set rt mtu/],
  ["-j NFQUEUE --queue-num 1", "-j NFQUEUE", /queue num/],
  ["-j nowhere", "-j nowhere", /neither a target .* nor one of the owner's chains/],
  [
    "-p udp -j CHECKSUM --checksum-fill",
    "-j CHECKSUM",
    /mandatory.*tc's csum action.*checksum offload/,
    { table: "mangle", family: 6 },
  ],
  ["-j CHECKSUM --checksum-fill", "-j CHECKSUM", /add -p udp/, { table: "mangle" }],
  ["-p udp -j CHECKSUM --checksum-fill", "-j CHECKSUM", /only in the mangle table/],
  ["-m physdev --physdev-in tap1 -j ACCEPT", "-m physdev", /bridge-family table/],
  ["-j DNAT --to-destination 10.0.0.1", "-j DNAT", /only in the nat table/],
  [
    "-j MASQUERADE",
    "-j MASQUERADE",
    /only in POSTROUTING, not PREROUTING/,
    { table: "nat", chain: "PREROUTING" },
  ],
  ["-j DNAT --to-destination 10.0.0.1:80", "-j DNAT", /ports need -p tcp/, nat],
  ["--dport 22 -j ACCEPT", "--dport", /not an option of the matches loaded/],
  ["-m tcp --dport 22", "-m tcp", /needs -p tcp/],
  ["-s example.com", "-s example.com", /host names are not resolved/],
  ["! -s 10.0.0.1,10.0.0.2", "! -s 10.0.0.1,10.0.0.2", /one rule per address/],
  ["-m set --match-set unknown src", "-m set", /not declared/],
  ["-m set --match-set svc src", "-m set", /needs 2 flags/],
  ["-m conntrack --ctstate NEW,DNAT", "-m conntrack", /needs two rules/],
  ["-j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff", "-j CONNMARK", /mixes two marks/, mangle],
  ["-j CT --helper ftp", "-j CT --helper", /not an option of CT/, { table: "raw" }],
  ["-j ACCEPT -j DROP", "-j DROP", /second target/],
  ["-i eth0\n-j ACCEPT", "", /one line/],
];

for (const [rule, part, says, ctx] of REFUSED)
  test(`refused: ${JSON.stringify(rule)}`, () => {
    assert.throws(
      () => translateRule(rule, { ...base, ...ctx }),
      (e: unknown) => {
        assert.ok(e instanceof TranslationError, String(e));
        assert.equal(e.part, part);
        assert.match(e.message, says);
        assert.ok(e.message.startsWith(`rule "${rule.split("\n")[0]}"`), e.message);
        return true;
      },
    );
  });

test("unsupported parts have their own code; a malformed rule is EINVAL", () => {
  assert.throws(() => translateRule("-m recent --set", base), isUnsupported);
  assert.throws(
    () => translateRule('-m comment --comment "open', base),
    (e: unknown) => e instanceof TranslationError && e.code === "EINVAL",
  );
});
