/**
 * The iptables targets the translator takes. Each renders nft statements and, for terminating
 * targets, the verdict. NAT targets are terminal statements in nft as in iptables.
 */
import { formatIP, parseIPLiteral } from "../address/index.js";
import type { RuleState } from "./state.js";
import type { TableName } from "./types.js";
import { hex, parseMarkMask, parsePort, parseU32 } from "./values.js";

export type TargetValues = Map<string, string[]>;

export interface TargetDef {
  options: Record<string, number>;
  /** Tables the target works in (iptables refuses it elsewhere, and so would nft's hooks). */
  tables?: readonly TableName[];
  render(st: RuleState, v: TargetValues): { statements: string[]; verdict?: string };
}

const REJECT_V4: Record<string, string> = {
  "icmp-net-unreachable": "net-unreachable",
  "net-unreach": "net-unreachable",
  "icmp-host-unreachable": "host-unreachable",
  "host-unreach": "host-unreachable",
  "icmp-port-unreachable": "port-unreachable",
  "port-unreach": "port-unreachable",
  "icmp-proto-unreachable": "prot-unreachable",
  "proto-unreach": "prot-unreachable",
  "icmp-net-prohibited": "net-prohibited",
  "net-prohib": "net-prohibited",
  "icmp-host-prohibited": "host-prohibited",
  "host-prohib": "host-prohibited",
  "icmp-admin-prohibited": "admin-prohibited",
  "admin-prohib": "admin-prohibited",
};
const REJECT_V6: Record<string, string> = {
  "icmp6-no-route": "no-route",
  "no-route": "no-route",
  "icmp6-adm-prohibited": "admin-prohibited",
  "adm-prohibited": "admin-prohibited",
  "icmp6-addr-unreachable": "addr-unreachable",
  "addr-unreach": "addr-unreachable",
  "icmp6-port-unreachable": "port-unreachable",
  "port-unreach": "port-unreachable",
};

/** `ip[-ip][:port[-port]]`, IPv6 in brackets when a port follows, as iptables takes it. */
function natTo(st: RuleState, text: string): string {
  const v6 = st.v6;
  let addrs = text;
  let ports: string | undefined;
  if (v6) {
    const m = /^\[([^\]]+)\](?::(.+))?$/.exec(text);
    if (m) [addrs, ports] = [m[1]!, m[2]];
  } else {
    const i = text.indexOf(":");
    if (i >= 0) [addrs, ports] = [text.slice(0, i), text.slice(i + 1)];
  }
  const range = addrs.split("-").map(parseIPLiteral);
  if (range.length > 2 || range.some((ip) => ip?.family !== (v6 ? 6 : 4)))
    throw new Error(`"${text}" is not an IPv${v6 ? 6 : 4} address or range`);
  const a = range.map((ip) => formatIP(ip!)).join("-");
  if (ports === undefined) return a;
  return `${v6 ? `[${a}]` : a}:${portRange(st, ports)}`;
}

function portRange(st: RuleState, text: string): string {
  if (!["tcp", "udp", "sctp", "udplite"].includes(st.proto ?? "") || st.protoNegated)
    throw new Error("ports need -p tcp, udp or sctp");
  const [a = "", b] = text.split("-");
  const lo = parsePort(a);
  const hi = b === undefined ? lo : parsePort(b);
  if (lo > hi) throw new Error(`port range "${text}" is empty`);
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

function natFlags(v: TargetValues, allowed: readonly string[]): string {
  const flags: string[] = [];
  for (const f of allowed) if (v.has(`--${f}`)) flags.push(f === "random-fully" ? "fully-random" : f);
  return flags.length ? ` ${flags.join(",")}` : "";
}

/** `meta mark set …` / `ct mark set …` for MARK and CONNMARK's value forms. */
function markSet(target: string, v: TargetValues): string | undefined {
  const one = (o: string): string | undefined => v.get(o)?.[0];
  const setMark = one("--set-mark");
  const setX = one("--set-xmark");
  if (setMark !== undefined || setX !== undefined) {
    const { value, mask } = parseMarkMask((setMark ?? setX)!);
    if (mask === undefined || mask === 0xffffffff) return `${target} set ${hex(value)}`;
    const keep = hex(~mask >>> 0);
    return `${target} set ${target} & ${keep} ${setMark !== undefined ? "|" : "^"} ${hex(value)}`;
  }
  for (const [o, sym] of [
    ["--or-mark", "|"],
    ["--and-mark", "&"],
    ["--xor-mark", "^"],
  ] as const) {
    const x = one(o);
    if (x !== undefined) return `${target} set ${target} ${sym} ${hex(parseU32(x))}`;
  }
  return undefined;
}

const markOptions = { "--set-mark": 1, "--set-xmark": 1, "--or-mark": 1, "--and-mark": 1, "--xor-mark": 1 };

export const TARGETS: Readonly<Record<string, TargetDef>> = {
  ACCEPT: { options: {}, render: () => ({ statements: [], verdict: "accept" }) },
  DROP: { options: {}, render: () => ({ statements: [], verdict: "drop" }) },
  RETURN: { options: {}, render: () => ({ statements: [], verdict: "return" }) },
  REJECT: {
    options: { "--reject-with": 1 },
    tables: ["filter", "mangle", "raw"],
    render(st, v) {
      const w = v.get("--reject-with")?.[0];
      if (w === undefined) return { statements: [], verdict: "reject" };
      if (w === "tcp-reset" || w === "tcp-rst") {
        if (st.proto !== "tcp" || st.protoNegated) throw new Error("--reject-with tcp-reset needs -p tcp");
        return { statements: [], verdict: "reject with tcp reset" };
      }
      const table = st.v6 ? REJECT_V6 : REJECT_V4;
      const code = Object.hasOwn(table, w) ? table[w] : undefined;
      if (code === undefined) throw new Error(`"${w}" is not an IPv${st.v6 ? 6 : 4} reject type`);
      if (code === "port-unreachable") return { statements: [], verdict: "reject" };
      return { statements: [], verdict: `reject with ${st.v6 ? "icmpv6" : "icmp"} type ${code}` };
    },
  },
  LOG: {
    options: {
      "--log-prefix": 1,
      "--log-level": 1,
      "--log-tcp-sequence": 0,
      "--log-tcp-options": 0,
      "--log-ip-options": 0,
      "--log-uid": 0,
    },
    render(_st, v) {
      const parts = ["log"];
      const prefix = v.get("--log-prefix")?.[0];
      if (prefix !== undefined) {
        if (/["\\;#{}]/.test(prefix) || Buffer.byteLength(prefix) > 29)
          throw new Error('--log-prefix holds at most 29 bytes and none of " \\ ; # { }');
        parts.push(`prefix "${prefix}"`);
      }
      const level = v.get("--log-level")?.[0];
      if (level !== undefined) parts.push(`level ${logLevel(level)}`);
      const tcp = ["--log-tcp-sequence", "--log-tcp-options"].filter((o) => v.has(o));
      if (tcp.length) parts.push(`flags tcp ${tcp.map((o) => o.slice(10)).join(",")}`);
      if (v.has("--log-ip-options")) parts.push("flags ip options");
      if (v.has("--log-uid")) parts.push("flags skuid");
      return { statements: [parts.join(" ")] };
    },
  },
  DNAT: {
    options: { "--to-destination": 1, "--random": 0, "--persistent": 0 },
    tables: ["nat"],
    render(st, v) {
      const to = v.get("--to-destination")?.[0];
      if (to === undefined) throw new Error("needs --to-destination");
      return { statements: [], verdict: `dnat to ${natTo(st, to)}${natFlags(v, ["random", "persistent"])}` };
    },
  },
  SNAT: {
    options: { "--to-source": 1, "--random": 0, "--random-fully": 0, "--persistent": 0 },
    tables: ["nat"],
    render(st, v) {
      const to = v.get("--to-source")?.[0];
      if (to === undefined) throw new Error("needs --to-source");
      const flags = natFlags(v, ["random", "random-fully", "persistent"]);
      return { statements: [], verdict: `snat to ${natTo(st, to)}${flags}` };
    },
  },
  MASQUERADE: {
    options: { "--to-ports": 1, "--random": 0, "--random-fully": 0 },
    tables: ["nat"],
    render(st, v) {
      const p = v.get("--to-ports")?.[0];
      const to = p === undefined ? "" : ` to :${portRange(st, p)}`;
      return { statements: [], verdict: `masquerade${to}${natFlags(v, ["random", "random-fully"])}` };
    },
  },
  REDIRECT: {
    options: { "--to-ports": 1, "--random": 0 },
    tables: ["nat"],
    render(st, v) {
      const p = v.get("--to-ports")?.[0];
      const to = p === undefined ? "" : ` to :${portRange(st, p)}`;
      return { statements: [], verdict: `redirect${to}${natFlags(v, ["random"])}` };
    },
  },
  NOTRACK: { options: {}, tables: ["raw"], render: () => ({ statements: ["notrack"] }) },
  CT: {
    options: { "--notrack": 0, "--zone": 1 },
    tables: ["raw"],
    render(_st, v) {
      const out: string[] = [];
      const zone = v.get("--zone")?.[0];
      if (zone !== undefined) {
        if (!/^\d{1,5}$/.test(zone) || Number(zone) > 65535)
          throw new Error(`"${zone}" is not a zone number`);
        out.push(`ct zone set ${zone}`);
      }
      if (v.has("--notrack")) out.push("notrack");
      if (out.length === 0)
        throw new Error(
          'takes --notrack or --zone here; in nft, helpers and timeouts are objects: `ct helper set "name"`, `ct timeout set "name"`',
        );
      return { statements: out };
    },
  },
  MARK: {
    options: markOptions,
    render(_st, v) {
      const s = markSet("meta mark", v);
      if (s === undefined)
        throw new Error("needs --set-mark, --set-xmark, --or-mark, --and-mark or --xor-mark");
      return { statements: [s] };
    },
  },
  CONNMARK: {
    options: {
      ...markOptions,
      "--save-mark": 0,
      "--restore-mark": 0,
      "--mask": 1,
      "--nfmask": 1,
      "--ctmask": 1,
    },
    render(_st, v) {
      for (const m of ["--mask", "--nfmask", "--ctmask"]) {
        const x = v.get(m)?.[0];
        if (x !== undefined && parseU32(x) !== 0xffffffff)
          throw new Error(
            `${m} other than 0xffffffff mixes two marks in one expression, which nft cannot write; copy the whole mark, or mask in a rule of its own`,
          );
      }
      if (v.has("--save-mark")) return { statements: ["ct mark set meta mark"] };
      if (v.has("--restore-mark")) return { statements: ["meta mark set ct mark"] };
      const s = markSet("ct mark", v);
      if (s === undefined) throw new Error("needs --set-mark, --save-mark or --restore-mark");
      return { statements: [s] };
    },
  },
  CHECKSUM: {
    options: { "--checksum-fill": 0 },
    tables: ["mangle"],
    render(st, v) {
      if (!v.has("--checksum-fill")) throw new Error("needs --checksum-fill");
      if (st.v6)
        throw new Error(
          "an IPv6 UDP checksum is mandatory (RFC 8200), so it cannot be set to zero as in IPv4, and nft cannot compute one; fill it with tc's csum action (`tc filter ... action csum udp`) or turn off checksum offload on the interface (`ethtool -K IFACE tx off`)",
        );
      if (st.proto !== "udp" || st.protoNegated)
        throw new Error(
          "translates only for UDP (`udp checksum set 0`): add -p udp, the traffic old DHCP clients drop",
        );
      st.protoImplied = true;
      // A zero UDP checksum means "no checksum" in IPv4: receivers accept it as it is.
      return { statements: ["udp checksum set 0"] };
    },
  },
};

const LOG_LEVELS = ["emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"];
function logLevel(text: string): string {
  if (/^[0-7]$/.test(text)) return LOG_LEVELS[Number(text)]!;
  const t = text === "warning" ? "warn" : text === "error" ? "err" : text === "panic" ? "emerg" : text;
  if (!LOG_LEVELS.includes(t)) throw new Error(`"${text}" is not a log level`);
  return t;
}
