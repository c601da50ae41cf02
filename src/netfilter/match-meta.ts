/**
 * Matches on state, marks, addresses and metadata: conntrack and state, comment, mark and
 * connmark, addrtype, limit, owner, iprange, statistic, physdev (bridge family only).
 */
import { fail, get, type MatchDef } from "./match-def.js";
import { protoName } from "./match-proto.js";
import { op } from "./state.js";
import {
  commaList,
  hex,
  parseAddress,
  parseInterface,
  parseMarkMask,
  parsePortRange,
  setOf,
} from "./values.js";

const CT_STATES = ["NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED"];
function ctState(v: { args: string[]; negated: boolean }): string[] {
  const items = commaList(v.args[0]!);
  const nat = items.filter((s) => s === "SNAT" || s === "DNAT").map((s) => s.toLowerCase());
  const plain = items.filter((s) => s !== "SNAT" && s !== "DNAT");
  for (const s of plain) if (!CT_STATES.includes(s)) throw new Error(`"${s}" is not a conntrack state`);
  const state = plain.length
    ? [`ct state ${op(v.negated)}${plain.map((s) => s.toLowerCase()).join(",")}`]
    : [];
  const status = nat.length ? [`ct status ${op(v.negated)}${nat.join(",")}`] : [];
  // "in one of them" is an or, which one nft rule cannot say; "in none of them" is an and.
  if (state.length && status.length && !v.negated)
    throw new Error(
      "SNAT/DNAT (ct status) or states (ct state) needs two rules in nft (its negation is one)",
    );
  return [...state, ...status];
}

const CT_STATUS = ["EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED"];

const ADDR_TYPES = [
  "UNSPEC",
  "UNICAST",
  "LOCAL",
  "BROADCAST",
  "ANYCAST",
  "MULTICAST",
  "BLACKHOLE",
  "UNREACHABLE",
  "PROHIBIT",
  "THROW",
  "NAT",
  "XRESOLVE",
];

function addrType(text: string): string {
  const items = commaList(text).map((t) => {
    if (!ADDR_TYPES.includes(t)) throw new Error(`"${t}" is not an address type`);
    return t.toLowerCase();
  });
  return setOf(items);
}

function mark(prefix: string, v: { args: string[]; negated: boolean }): string {
  const { value, mask } = parseMarkMask(v.args[0]!);
  if (mask === undefined || mask === 0xffffffff) return `${prefix} ${op(v.negated)}${hex(value)}`;
  return `${prefix} & ${hex(mask)} ${v.negated ? "!=" : "=="} ${hex(value)}`;
}

function ownerId(text: string, what: string): string {
  if (/^\d{1,10}(-\d{1,10})?$/.test(text)) return text;
  if (/^[a-z_][a-z0-9_.-]{0,31}$/.test(text)) return text;
  throw new Error(`"${text}" is not a ${what} name, number or range`);
}

export const META_MATCHES: Readonly<Record<string, MatchDef>> = {
  conntrack: {
    options: {
      "--ctstate": 1,
      "--ctstatus": 1,
      "--ctproto": 1,
      "--ctorigsrc": 1,
      "--ctorigdst": 1,
      "--ctreplsrc": 1,
      "--ctrepldst": 1,
      "--ctorigsrcport": 1,
      "--ctorigdstport": 1,
      "--ctreplsrcport": 1,
      "--ctrepldstport": 1,
      "--ctdir": 1,
    },
    negatable: [
      "--ctstate",
      "--ctstatus",
      "--ctproto",
      "--ctorigsrc",
      "--ctorigdst",
      "--ctreplsrc",
      "--ctrepldst",
      "--ctorigsrcport",
      "--ctorigdstport",
      "--ctreplsrcport",
      "--ctrepldstport",
    ],
    render(st, m) {
      const out: string[] = [];
      const v = m.values;
      const s = get(v, "--ctstate");
      if (s) out.push(...ctState(s));
      const status = get(v, "--ctstatus");
      if (status) {
        const items = commaList(status.args[0]!).map((x) => {
          if (!CT_STATUS.includes(x)) throw new Error(`"${x}" is not a conntrack status`);
          return x.toLowerCase().replace("_", "-");
        });
        out.push(`ct status ${op(status.negated)}${items.join(",")}`);
      }
      const proto = get(v, "--ctproto");
      if (proto) out.push(`ct protocol ${op(proto.negated)}${protoName(proto.args[0]!, st.v6)}`);
      for (const [o, dir, field] of [
        ["--ctorigsrc", "original", "saddr"],
        ["--ctorigdst", "original", "daddr"],
        ["--ctreplsrc", "reply", "saddr"],
        ["--ctrepldst", "reply", "daddr"],
      ] as const) {
        const a = get(v, o);
        if (!a) continue;
        const addr = parseAddress(a.args[0]!, st.ctx.family);
        if (addr === undefined) throw new Error(`${o} 0/0 matches every packet; leave it out`);
        out.push(`ct ${dir} ${st.ipKw} ${field} ${op(a.negated)}${addr}`);
      }
      for (const [o, dir, field] of [
        ["--ctorigsrcport", "original", "proto-src"],
        ["--ctorigdstport", "original", "proto-dst"],
        ["--ctreplsrcport", "reply", "proto-src"],
        ["--ctrepldstport", "reply", "proto-dst"],
      ] as const) {
        const p = get(v, o);
        if (!p) continue;
        if (!proto) throw new Error(`${o} needs --ctproto before it (nft needs the protocol)`);
        out.push(`ct ${dir} ${field} ${op(p.negated)}${parsePortRange(p.args[0]!)}`);
      }
      const dir = get(v, "--ctdir");
      if (dir) {
        if (dir.args[0] !== "ORIGINAL" && dir.args[0] !== "REPLY")
          throw new Error(`--ctdir takes ORIGINAL or REPLY, not "${dir.args[0]}"`);
        out.push(`ct direction ${dir.args[0].toLowerCase()}`);
      }
      if (out.length === 0) throw new Error("needs an option such as --ctstate");
      return out;
    },
  },
  state: {
    options: { "--state": 1 },
    negatable: ["--state"],
    render(_st, m) {
      const s = get(m.values, "--state");
      if (!s) throw new Error("needs --state");
      return ctState(s);
    },
  },
  comment: {
    options: { "--comment": 1 },
    render(st, m) {
      const c = get(m.values, "--comment");
      if (!c) throw new Error("needs --comment");
      if (/["\\]/.test(c.args[0]!) || Buffer.byteLength(c.args[0]!) > 256)
        throw new Error('a comment holds at most 256 bytes and no " or \\');
      st.comments.push(c.args[0]!);
      return [];
    },
  },
  mark: {
    options: { "--mark": 1 },
    negatable: ["--mark"],
    render: (_st, m) => [mark("meta mark", get(m.values, "--mark") ?? fail("needs --mark"))],
  },
  connmark: {
    options: { "--mark": 1 },
    negatable: ["--mark"],
    render: (_st, m) => [mark("ct mark", get(m.values, "--mark") ?? fail("needs --mark"))],
  },
  addrtype: {
    options: { "--src-type": 1, "--dst-type": 1, "--limit-iface-in": 0, "--limit-iface-out": 0 },
    negatable: ["--src-type", "--dst-type"],
    render(_st, m) {
      const v = m.values;
      const inIf = get(v, "--limit-iface-in");
      const outIf = get(v, "--limit-iface-out");
      if (inIf && outIf) throw new Error("--limit-iface-in and --limit-iface-out exclude each other");
      const iface = inIf ? " . iif" : outIf ? " . oif" : "";
      const out: string[] = [];
      for (const [o, f] of [
        ["--src-type", "saddr"],
        ["--dst-type", "daddr"],
      ] as const) {
        const t = get(v, o);
        if (t) out.push(`fib ${f}${iface} type ${op(t.negated)}${addrType(t.args[0]!)}`);
      }
      if (out.length === 0) throw new Error("needs --src-type or --dst-type");
      return out;
    },
  },
  limit: {
    options: { "--limit": 1, "--limit-burst": 1 },
    render(_st, m) {
      const rate = get(m.values, "--limit")?.args[0] ?? "3/hour";
      const r = /^(\d{1,9})(?:\/(s|sec|second|m|min|minute|h|hour|d|day))?$/.exec(rate);
      if (!r) throw new Error(`"${rate}" is not a rate (N/second, N/minute, N/hour, N/day)`);
      const unit = { s: "second", m: "minute", h: "hour", d: "day" }[(r[2] ?? "s")[0] as "s"];
      const burst = get(m.values, "--limit-burst")?.args[0] ?? "5";
      if (!/^\d{1,9}$/.test(burst)) throw new Error(`"${burst}" is not a burst size`);
      return [`limit rate ${r[1]}/${unit} burst ${burst} packets`];
    },
  },
  owner: {
    options: { "--uid-owner": 1, "--gid-owner": 1 },
    negatable: ["--uid-owner", "--gid-owner"],
    render(st, m) {
      if (
        st.ctx.chain !== undefined &&
        !["OUTPUT", "POSTROUTING"].includes(st.ctx.chain) &&
        isBuiltinName(st.ctx.chain)
      )
        throw new Error("matches only locally generated packets (OUTPUT, POSTROUTING)");
      const out: string[] = [];
      const uid = get(m.values, "--uid-owner");
      if (uid) out.push(`meta skuid ${op(uid.negated)}${ownerId(uid.args[0]!, "user")}`);
      const gid = get(m.values, "--gid-owner");
      if (gid) out.push(`meta skgid ${op(gid.negated)}${ownerId(gid.args[0]!, "group")}`);
      if (out.length === 0) throw new Error("needs --uid-owner or --gid-owner");
      return out;
    },
  },
  iprange: {
    options: { "--src-range": 1, "--dst-range": 1 },
    negatable: ["--src-range", "--dst-range"],
    render(st, m) {
      const out: string[] = [];
      for (const [o, f] of [
        ["--src-range", "saddr"],
        ["--dst-range", "daddr"],
      ] as const) {
        const r = get(m.values, o);
        if (!r) continue;
        const [a = "", b = "", ...rest] = r.args[0]!.split("-");
        const lo = parseAddress(a, st.ctx.family);
        const hi = parseAddress(b, st.ctx.family);
        if (rest.length || !lo || !hi || lo.includes("/") || hi.includes("/"))
          throw new Error(`"${r.args[0]}" is not an address range A-B`);
        out.push(`${st.ipKw} ${f} ${op(r.negated)}${lo}-${hi}`);
      }
      return out;
    },
  },
  statistic: {
    options: { "--mode": 1, "--probability": 1, "--every": 1, "--packet": 1 },
    negatable: ["--probability", "--every"],
    render(_st, m) {
      const mode = get(m.values, "--mode")?.args[0];
      if (mode === "random") {
        const p = get(m.values, "--probability") ?? fail("--mode random needs --probability");
        const prob = Number(p.args[0]);
        if (!/^(0(\.\d+)?|1(\.0+)?)$/.test(p.args[0]!))
          throw new Error(`"${p.args[0]}" is not a probability`);
        // The kernel compares 31 random bits with probability * 2^31, as numgen does here.
        const n = Math.round(prob * 0x80000000);
        return [`numgen random mod 2147483648 ${p.negated ? ">=" : "<"} ${n}`];
      }
      if (mode === "nth") {
        const e = get(m.values, "--every") ?? fail("--mode nth needs --every");
        const every = Number(e.args[0]);
        const packet = Number(get(m.values, "--packet")?.args[0] ?? "0");
        if (!Number.isInteger(every) || every < 1 || !Number.isInteger(packet) || packet >= every)
          throw new Error("--every N --packet P needs 0 <= P < N");
        return [`numgen inc mod ${every} ${op(e.negated)}${packet}`];
      }
      throw new Error("needs --mode random or --mode nth");
    },
  },
  mac: {
    options: { "--mac-source": 1 },
    negatable: ["--mac-source"],
    render(st, m) {
      const v = get(m.values, "--mac-source") ?? fail("needs --mac-source");
      if (!/^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$/.test(v.args[0]!))
        throw new Error(`"${v.args[0]}" is not a MAC address`);
      if (st.ctx.chain !== undefined && ["OUTPUT", "POSTROUTING"].includes(st.ctx.chain))
        throw new Error("the source MAC is known only for received packets (PREROUTING, INPUT, FORWARD)");
      return [`ether saddr ${op(v.negated)}${v.args[0]!.toLowerCase()}`];
    },
  },
  physdev: {
    options: {
      "--physdev-in": 1,
      "--physdev-out": 1,
      "--physdev-is-in": 0,
      "--physdev-is-out": 0,
      "--physdev-is-bridged": 0,
    },
    negatable: ["--physdev-in", "--physdev-out"],
    render(st, m) {
      if (!st.ctx.bridge)
        throw new Error(
          "bridge ports are not visible from an ip or ip6 table; in nft, match them in a bridge-family table, where `iifname`/`oifname` are the ports and `meta ibrname`/`meta obrname` the bridge",
        );
      const out: string[] = [];
      for (const [o, kw] of [
        ["--physdev-in", "iifname"],
        ["--physdev-out", "oifname"],
      ] as const) {
        const v = get(m.values, o);
        if (!v) continue;
        const name = parseInterface(v.args[0]!);
        if (name !== undefined) out.push(`${kw} ${op(v.negated)}${name}`);
      }
      return out;
    },
  },
};

function isBuiltinName(chain: string): boolean {
  return ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"].includes(chain);
}
