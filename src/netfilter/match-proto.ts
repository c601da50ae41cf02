/**
 * Protocol matches: `-p` names, ports of tcp, udp, udplite and sctp (with `multiport`), TCP
 * flags, ICMP and ICMPv6 types.
 */
import { parseIcmpType } from "./icmp.js";
import { get, requireProto, type MatchDef, type Values } from "./match-def.js";
import { op, type ModuleInstance, type RuleState } from "./state.js";
import { commaList, parsePortRange, setOf } from "./values.js";

function ports(st: RuleState, proto: string, v: Values): string[] {
  const out: string[] = [];
  for (const [opt, field] of [
    ["--sport", "sport"],
    ["--dport", "dport"],
  ] as const) {
    const p = get(v, opt);
    if (p) out.push(`${proto} ${field} ${op(p.negated)}${parsePortRange(p.args[0]!)}`);
  }
  return out;
}

const TCP_FLAGS = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
/** nft calls ECE ecn. */
const nftFlag = (f: string): string => (f === "ECE" ? "ecn" : f.toLowerCase());
function tcpFlags(text: string): string[] {
  if (text === "ALL") return TCP_FLAGS.map(nftFlag);
  if (text === "NONE") return [];
  return commaList(text).map((f) => {
    if (!TCP_FLAGS.includes(f)) throw new Error(`"${f}" is not a TCP flag`);
    return nftFlag(f);
  });
}
function flagsExpr(mask: string[], comp: string[], negated: boolean): string {
  const m = mask.length === 1 ? mask[0]! : `(${mask.join("|")})`;
  const c = comp.length === 0 ? "0" : comp.join("|");
  return `tcp flags & ${m} ${negated ? "!=" : "=="} ${c}`;
}

const portOptions = { "--sport": 1, "--dport": 1 };
const portAliases = { "--source-port": "--sport", "--destination-port": "--dport" };

export const PROTO_MATCHES: Readonly<Record<string, MatchDef>> = {
  tcp: {
    options: { ...portOptions, "--tcp-flags": 2, "--syn": 0 },
    aliases: portAliases,
    negatable: ["--sport", "--dport", "--tcp-flags", "--syn"],
    render(st, m) {
      const proto = requireProto(st, "tcp", ["tcp"]);
      const out = ports(st, proto, m.values);
      const f = get(m.values, "--tcp-flags");
      if (f) out.push(flagsExpr(tcpFlags(f.args[0]!), tcpFlags(f.args[1]!), f.negated));
      const syn = get(m.values, "--syn");
      if (syn) out.push(flagsExpr(["fin", "syn", "rst", "ack"], ["syn"], syn.negated));
      return out;
    },
  },
  udp: {
    options: portOptions,
    aliases: portAliases,
    negatable: ["--sport", "--dport"],
    render: (st, m) => ports(st, requireProto(st, "udp", ["udp"]), m.values),
  },
  udplite: {
    options: portOptions,
    aliases: portAliases,
    negatable: ["--sport", "--dport"],
    render: (st, m) => ports(st, requireProto(st, "udplite", ["udplite"]), m.values),
  },
  sctp: {
    options: portOptions,
    aliases: portAliases,
    negatable: ["--sport", "--dport"],
    render: (st, m) => ports(st, requireProto(st, "sctp", ["sctp"]), m.values),
  },
  multiport: {
    options: { "--sports": 1, "--dports": 1 },
    aliases: {
      "--source-ports": "--sports",
      "--destination-ports": "--dports",
    },
    negatable: ["--sports", "--dports"],
    render(st, m) {
      const proto = requireProto(st, "multiport", ["tcp", "udp", "udplite", "sctp"]);
      const out: string[] = [];
      for (const [o, f] of [
        ["--sports", "sport"],
        ["--dports", "dport"],
      ] as const) {
        const v = get(m.values, o);
        if (!v) continue;
        const items = commaList(v.args[0]!).map(parsePortRange);
        if (items.length > 15) throw new Error("takes at most 15 ports (iptables' limit)");
        out.push(`${proto} ${f} ${op(v.negated)}${setOf(items)}`);
      }
      if (out.length === 0) throw new Error("needs --sports or --dports");
      return out;
    },
  },
  icmp: {
    options: { "--icmp-type": 1 },
    negatable: ["--icmp-type"],
    render: (st, m) => icmp(st, m, "icmp", "--icmp-type", false),
  },
  icmp6: {
    options: { "--icmpv6-type": 1 },
    negatable: ["--icmpv6-type"],
    render: (st, m) => icmp(st, m, "icmpv6", "--icmpv6-type", true),
  },
};

function icmp(st: RuleState, m: ModuleInstance, kw: string, opt: string, v6: boolean): string[] {
  requireProto(st, kw, v6 ? ["icmpv6"] : ["icmp"]);
  const t = get(m.values, opt);
  if (!t) throw new Error(`needs ${opt}`);
  const parsed = parseIcmpType(t.args[0]!, v6);
  if (!parsed) return [`meta l4proto ${kw}`];
  if (parsed.code === undefined) return [`${kw} type ${op(t.negated)}${parsed.type}`];
  if (t.negated) throw new Error("a negated type/code pair needs two rules in nft (type, then code)");
  return [`${kw} type ${parsed.type} ${kw} code ${parsed.code}`];
}

const PROTO_NUMBERS: Record<string, string> = {
  "1": "icmp",
  "6": "tcp",
  "17": "udp",
  "58": "icmpv6",
  "132": "sctp",
  "136": "udplite",
  "47": "gre",
  "50": "esp",
  "51": "ah",
};
const PROTO_NAMES = ["tcp", "udp", "udplite", "sctp", "icmp", "icmpv6", "gre", "esp", "ah", "dccp", "igmp"];

/** A protocol name for nft: `ipv6-icmp`/`icmp6` → `icmpv6`, known numbers → names. */
export function protoName(text: string, v6: boolean): string {
  const t = text.toLowerCase();
  if (t === "ipv6-icmp" || t === "icmp6" || t === "icmpv6") return "icmpv6";
  if (Object.hasOwn(PROTO_NUMBERS, t)) return PROTO_NUMBERS[t]!;
  if (PROTO_NAMES.includes(t)) {
    if (t === "icmp" && v6) throw new Error("ICMP in IPv6 is -p ipv6-icmp (icmpv6)");
    return t;
  }
  if (/^\d{1,3}$/.test(t) && Number(t) <= 255) return t;
  throw new Error(`"${text}" is not a protocol`);
}
