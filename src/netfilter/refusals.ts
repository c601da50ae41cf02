/**
 * iptables matches and targets the translator does not take, with the nft way to do the same
 * where there is one: the refusal tells the caller what to write instead.
 */

export const MATCH_NFT_WAYS: Readonly<Record<string, string | undefined>> = {
  recent: "a dynamic set with a timeout: `add @seen { ip saddr }` and `ip saddr @seen`",
  hashlimit: "a meter: `meter m { ip saddr limit rate 10/second }` (a dynamic set with limit)",
  string: "no payload string search in nft; match a fixed offset with `@th,OFFSET,LEN`",
  length: "`meta length 0-500`",
  ttl: "`ip ttl 64` (`ip ttl < 10`)",
  hl: "`ip6 hoplimit 64`",
  pkttype: "`meta pkttype broadcast` (unicast, multicast, broadcast)",
  u32: "raw payload matches: `@nh,OFFSET,LEN VALUE`",
  socket: "`socket transparent 1` / `socket mark`",
  tos: "`ip dscp cs1` (`ip6 dscp` for IPv6)",
  dscp: "`ip dscp cs1` (`ip6 dscp` for IPv6)",
  helper: '`ct helper "ftp"`',
  connlimit: "`ct count over 10` (with a dynamic set per source: `add @c { ip saddr ct count over 10 }`)",
  connbytes: "`ct bytes > 1000000` / `ct packets`",
  quota: "`quota over 100 mbytes` or a named quota object",
  time: '`meta hour "09:00"-"17:00"`, `meta day "Monday"`',
  devgroup: "`meta iifgroup 1` / `meta oifgroup 1`",
  cgroup: '`socket cgroupv2 level 1 "system.slice"` / `meta cgroup`',
  policy: "`meta secpath exists` / `ipsec in reqid 1`",
  realm: "`rt realm 10`",
  esp: "`esp spi 100`",
  ah: "`ah spi 100`",
  rpfilter: "`fib saddr . iif oif missing drop` (reverse path filter)",
  cpu: "`meta cpu 0`",
  nfacct: "a named counter: `counter name c`",
  dccp: "`dccp dport 5000`",
  frag: "`exthdr frag exists` / `frag id 1`",
  ipv6header: "`exthdr hbh exists` (hbh, rt, frag, dst, mh)",
  rt: "`rt type 0` / `exthdr rt exists`",
  hbh: "`hbh nexthdr 6` / `exthdr hbh exists`",
  dst: "`dst nexthdr 6` / `exthdr dst exists`",
  mh: "`mh type 1`",
  osf: '`osf name "Linux"`',
  ecn: "`ip ecn ce` / `tcp flags ecn`",
  tcpmss: "`tcp option maxseg size 500-1500`",
  bpf: undefined,
  ipvs: undefined,
};

export const TARGET_NFT_WAYS: Readonly<Record<string, string | undefined>> = {
  TCPMSS: "`tcp flags syn tcp option maxseg size set rt mtu`",
  NFQUEUE: "`queue num 0` (`queue num 0-3 fanout`, `bypass`)",
  QUEUE: "`queue num 0`",
  NFLOG: '`log group 1 prefix "..."`',
  ULOG: "`log group 1`",
  TRACE: "`meta nftrace set 1` (then `nft monitor trace`)",
  SET: "`add @set { ip saddr }` / `update @set { ip saddr }` / `delete @set { ip saddr }`",
  CLASSIFY: "`meta priority set 1:10`",
  DSCP: "`ip dscp set cs1` (`ip6 dscp set` for IPv6)",
  TOS: "`ip dscp set cs1`",
  TEE: '`dup to 10.0.0.1 device "eth0"`',
  TPROXY: "`tproxy to :8080` with `meta mark set 1`",
  HMARK: "`meta mark set jhash ip saddr . ip daddr mod 16 offset 100`",
  NETMAP: "`snat ip prefix to ip saddr map { 10.0.0.0/24 : 192.168.0.0/24 }`",
  TTL: "`ip ttl set 64`",
  HL: "`ip6 hoplimit set 64`",
  AUDIT: "`log level audit`",
  SECMARK: 'a secmark object: `ct secmark set` / `meta secmark set "name"`',
  CONNSECMARK: "`ct secmark set meta secmark` / `meta secmark set ct secmark`",
  SYNPROXY: "`synproxy mss 1460 wscale 7 timestamp sack-perm`",
  CLUSTERIP: undefined,
  IDLETIMER: undefined,
  LED: undefined,
  RATEEST: undefined,
  MIRROR: undefined,
};

export function nftWayForMatch(name: string): string | undefined {
  return Object.hasOwn(MATCH_NFT_WAYS, name) ? MATCH_NFT_WAYS[name] : undefined;
}

export function nftWayForTarget(name: string): string | undefined {
  return Object.hasOwn(TARGET_NFT_WAYS, name) ? TARGET_NFT_WAYS[name] : undefined;
}

export function isKnownUnsupportedMatch(name: string): boolean {
  return Object.hasOwn(MATCH_NFT_WAYS, name);
}

export function isKnownUnsupportedTarget(name: string): boolean {
  return Object.hasOwn(TARGET_NFT_WAYS, name);
}
