/**
 * ICMP and ICMPv6 type names: iptables' names (some stand for a type and a code) mapped to the
 * type name nft knows and the code as a number.
 */

interface IcmpName {
  type: string;
  code?: number;
}

const ICMP_TYPE_NAMES: Record<number, string> = {
  0: "echo-reply",
  3: "destination-unreachable",
  4: "source-quench",
  5: "redirect",
  8: "echo-request",
  9: "router-advertisement",
  10: "router-solicitation",
  11: "time-exceeded",
  12: "parameter-problem",
  13: "timestamp-request",
  14: "timestamp-reply",
  17: "address-mask-request",
  18: "address-mask-reply",
};

const ICMP_NAMES: Record<string, [number, number?]> = {
  "echo-reply": [0],
  pong: [0],
  "destination-unreachable": [3],
  "network-unreachable": [3, 0],
  "host-unreachable": [3, 1],
  "protocol-unreachable": [3, 2],
  "port-unreachable": [3, 3],
  "fragmentation-needed": [3, 4],
  "source-route-failed": [3, 5],
  "network-unknown": [3, 6],
  "host-unknown": [3, 7],
  "network-prohibited": [3, 9],
  "host-prohibited": [3, 10],
  "TOS-network-unreachable": [3, 11],
  "TOS-host-unreachable": [3, 12],
  "communication-prohibited": [3, 13],
  "host-precedence-violation": [3, 14],
  "precedence-cutoff": [3, 15],
  "source-quench": [4],
  redirect: [5],
  "network-redirect": [5, 0],
  "host-redirect": [5, 1],
  "TOS-network-redirect": [5, 2],
  "TOS-host-redirect": [5, 3],
  "echo-request": [8],
  ping: [8],
  "router-advertisement": [9],
  "router-solicitation": [10],
  "time-exceeded": [11],
  "ttl-exceeded": [11],
  "ttl-zero-during-transit": [11, 0],
  "ttl-zero-during-reassembly": [11, 1],
  "parameter-problem": [12],
  "ip-header-bad": [12, 0],
  "required-option-missing": [12, 1],
  "timestamp-request": [13],
  "timestamp-reply": [14],
  "address-mask-request": [17],
  "address-mask-reply": [18],
};

const ICMPV6_TYPE_NAMES: Record<number, string> = {
  1: "destination-unreachable",
  2: "packet-too-big",
  3: "time-exceeded",
  4: "parameter-problem",
  128: "echo-request",
  129: "echo-reply",
  130: "mld-listener-query",
  131: "mld-listener-report",
  132: "mld-listener-done",
  133: "nd-router-solicit",
  134: "nd-router-advert",
  135: "nd-neighbor-solicit",
  136: "nd-neighbor-advert",
  137: "nd-redirect",
};

const ICMPV6_NAMES: Record<string, [number, number?]> = {
  "destination-unreachable": [1],
  "no-route": [1, 0],
  "communication-prohibited": [1, 1],
  "beyond-scope": [1, 2],
  "address-unreachable": [1, 3],
  "port-unreachable": [1, 4],
  "failed-policy": [1, 5],
  "reject-route": [1, 6],
  "packet-too-big": [2],
  "time-exceeded": [3],
  "ttl-exceeded": [3],
  "ttl-zero-during-transit": [3, 0],
  "ttl-zero-during-reassembly": [3, 1],
  "parameter-problem": [4],
  "bad-header": [4, 0],
  "unknown-header-type": [4, 1],
  "unknown-option": [4, 2],
  "echo-request": [128],
  ping: [128],
  "echo-reply": [129],
  pong: [129],
  "router-solicitation": [133],
  "router-advertisement": [134],
  "neighbour-solicitation": [135],
  "neighbor-solicitation": [135],
  "neighbour-advertisement": [136],
  "neighbor-advertisement": [136],
  redirect: [137],
  "mld-listener-query": [130],
  "mld-listener-report": [131],
  "mld-listener-done": [132],
  "mld-listener-reduction": [132],
};

/** `echo-request`, `port-unreachable`, `8`, `3/3` → type name and optional code; `any` → undefined. */
export function parseIcmpType(text: string, v6: boolean): IcmpName | undefined {
  if (text === "any") return undefined;
  const names = v6 ? ICMPV6_NAMES : ICMP_NAMES;
  const typeNames = v6 ? ICMPV6_TYPE_NAMES : ICMP_TYPE_NAMES;
  let pair = Object.hasOwn(names, text) ? names[text] : undefined;
  if (!pair) {
    const m = /^(\d{1,3})(?:\/(\d{1,3}))?$/.exec(text);
    if (!m || Number(m[1]) > 255 || Number(m[2] ?? 0) > 255)
      throw new Error(`"${text}" is not an ${v6 ? "ICMPv6" : "ICMP"} type`);
    pair = [Number(m[1]), m[2] === undefined ? undefined : Number(m[2])];
  }
  const [type, code] = pair;
  const out: IcmpName = { type: typeNames[type] ?? String(type) };
  if (code !== undefined) out.code = code;
  return out;
}
