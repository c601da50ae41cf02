/**
 * The iptables rule language, one rule at a time, into nft rule text. Everything the
 * translator does not know is refused with a TranslationError naming the rule, the part and,
 * where one exists, the nft way: nothing is passed through unread.
 */
import { TranslationError } from "./errors.js";
import { MATCHES, protoName, type MatchDef } from "./matches.js";
import {
  isKnownUnsupportedMatch,
  isKnownUnsupportedTarget,
  nftWayForMatch,
  nftWayForTarget,
} from "./refusals.js";
import { setMatch, SET_MATCH } from "./set-match.js";
import { RuleState, op, type TranslateContext, type TranslatedRule } from "./state.js";
import { TARGETS, type TargetDef } from "./targets.js";
import { tokenize } from "./tokenize.js";
import { parseAddress, parseInterface } from "./values.js";

export type { TranslateContext, TranslatedRule, IptablesArg } from "./state.js";

/** Implicit matches `-p PROTO` loads, as iptables does (`-p tcp --dport 22` without `-m tcp`). */
const IMPLICIT: Record<string, string> = {
  tcp: "tcp",
  udp: "udp",
  udplite: "udplite",
  sctp: "sctp",
  icmp: "icmp",
  icmpv6: "icmp6",
};

const NAT_HOOKS: Record<string, readonly string[]> = {
  DNAT: ["PREROUTING", "OUTPUT"],
  REDIRECT: ["PREROUTING", "OUTPUT"],
  SNAT: ["POSTROUTING", "INPUT"],
  MASQUERADE: ["POSTROUTING"],
  REJECT: ["INPUT", "FORWARD", "OUTPUT"],
};
const BUILTIN = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

function matchDef(name: string): MatchDef | undefined {
  if (name === "set") return SET_MATCH;
  return Object.hasOwn(MATCHES, name) ? MATCHES[name] : undefined;
}

export function translateRule(rule: string, ctx: TranslateContext): TranslatedRule {
  const st = new RuleState(rule, ctx);
  const tokens = tokenize(rule);
  const refuse = (part: string, reason: string, nftWay?: string): never => {
    throw new TranslationError(rule, part, reason, nftWay);
  };
  const wrap = <T>(part: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof TranslationError) throw e;
      return refuse(part, (e as Error).message);
    }
  };
  let negated = false;
  let target: { name: string; def: TargetDef; values: Map<string, string[]> } | undefined;
  let i = 0;
  const next = (opt: string): string => {
    const v = tokens[++i];
    if (v === undefined) refuse(opt, "needs a value");
    st.args.push(v!);
    return v!;
  };
  for (; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === "!") {
      if (negated) refuse("!", "two ! in a row");
      negated = true;
      st.args.push(t);
      continue;
    }
    const neg = negated;
    negated = false;
    st.args.push(t);
    switch (t) {
      case "-s":
      case "--source":
      case "--src":
      case "-d":
      case "--destination":
      case "--dst": {
        const v = next(t);
        const field = t.startsWith("-s") || t === "--source" || t === "--src" ? "saddr" : "daddr";
        const items = v.split(",");
        if (items.length > 1 && neg)
          refuse(
            `! ${t} ${v}`,
            "iptables makes one rule per address, so a negated list is not `!= { … }`; write one rule per address or use a set",
          );
        const addrs = items.map((a) => wrap(`${t} ${v}`, () => parseAddress(a, ctx.family)));
        if (addrs.some((a) => a === undefined)) {
          if (neg) refuse(`! ${t} ${v}`, "matches no packet");
          break;
        }
        st.emit(
          `${st.ipKw} ${field} ${op(neg)}${addrs.length === 1 ? addrs[0]! : `{ ${addrs.join(", ")} }`}`,
        );
        break;
      }
      case "-i":
      case "--in-interface":
      case "-o":
      case "--out-interface": {
        const v = next(t);
        const name = wrap(`${t} ${v}`, () => parseInterface(v));
        if (name !== undefined)
          st.emit(`${t === "-i" || t === "--in-interface" ? "iifname" : "oifname"} ${op(neg)}${name}`);
        else if (neg) refuse(`! ${t} +`, "matches no packet");
        break;
      }
      case "-p":
      case "--protocol": {
        const v = next(t);
        if (st.proto !== undefined) refuse(`${t} ${v}`, "a second protocol");
        if (v === "all" || v === "0") {
          if (neg) refuse(`! ${t} ${v}`, "matches no packet");
          break;
        }
        st.proto = wrap(`${t} ${v}`, () => protoName(v, st.v6));
        st.protoNegated = neg;
        st.protoSlot = st.slot();
        break;
      }
      case "-f":
      case "--fragment":
        if (st.v6) refuse(t, "ip6tables has no -f", "`exthdr frag exists`");
        st.emit(`ip frag-off & 0x1fff ${neg ? "==" : "!="} 0`);
        break;
      case "-m":
      case "--match": {
        const name = next(t);
        if (neg) refuse(`! ${t}`, "a match cannot be negated, only its options");
        const def = matchDef(name);
        if (!def) {
          const known = isKnownUnsupportedMatch(name);
          refuse(
            `-m ${name}`,
            known ? "this match is not translated" : "unknown match",
            nftWayForMatch(name),
          );
        }
        st.module(name);
        break;
      }
      case "-j":
      case "--jump":
      case "-g":
      case "--goto": {
        const name = next(t);
        if (neg) refuse(`! ${t}`, "a target cannot be negated");
        if (target || st.verdict) refuse(`${t} ${name}`, "a second target");
        const goto = t === "-g" || t === "--goto";
        const def = !goto && Object.hasOwn(TARGETS, name) ? TARGETS[name] : undefined;
        if (def) {
          if (def.tables && !def.tables.includes(ctx.table))
            refuse(
              `-j ${name}`,
              `is valid only in the ${def.tables.join(", ")} table${def.tables.length > 1 ? "s" : ""}, not ${ctx.table}`,
            );
          const hooks = NAT_HOOKS[name];
          if (hooks && ctx.chain !== undefined && BUILTIN.includes(ctx.chain) && !hooks.includes(ctx.chain))
            refuse(`-j ${name}`, `is valid only in ${hooks.join(", ")}, not ${ctx.chain}`);
          target = { name, def, values: new Map() };
          st.target = name;
          break;
        }
        const chain = name.startsWith("$") ? name.slice(1) : name;
        const ref = ctx.chainRef?.(chain);
        if (ref === undefined) {
          if (!goto && isKnownUnsupportedTarget(name))
            refuse(`-j ${name}`, "this target is not translated", nftWayForTarget(name));
          refuse(`${t} ${name}`, `is neither a target the translator knows nor one of the owner's chains`);
        }
        st.args[st.args.length - 1] = { chain };
        st.jumps.push(chain);
        st.target = chain;
        st.verdict = `${goto ? "goto" : "jump"} ${ref!}`;
        break;
      }
      default: {
        if (!t.startsWith("-")) refuse(t, "unexpected argument (an option value without its option?)");
        if (target) {
          const n = Object.hasOwn(target.def.options, t) ? target.def.options[t] : undefined;
          if (n === undefined)
            refuse(`-j ${target.name} ${t}`, `is not an option of ${target.name} the translator takes`);
          if (neg) refuse(`! ${t}`, "cannot be negated");
          if (target.values.has(t)) refuse(t, "given twice");
          const args: string[] = [];
          for (let k = 0; k < n!; k++) args.push(next(t));
          target.values.set(t, args);
          break;
        }
        const found = findOption(st, t);
        if (!found) refuse(t, "is not an option of the matches loaded before it (a -m missing?)");
        const { m, def, canonical } = found!;
        if (neg && !def.negatable?.includes(canonical)) refuse(`! ${t}`, "cannot be negated");
        if (m.values.has(canonical)) refuse(t, "given twice");
        const args: string[] = [];
        for (let k = 0; k < def.options[canonical]!; k++) args.push(next(t));
        if (canonical === "--match-set") st.args[st.args.length - 2] = { set: args[0]! };
        m.values.set(canonical, { args, negated: neg });
      }
    }
  }
  if (negated) refuse("!", "nothing follows it");

  // Matches render in the order they were loaded, once all their options are known.
  for (const m of st.modules) {
    const def = matchDef(m.name)!;
    const implied = st.protoImplied;
    st.exprs[m.slot] = wrap(`-m ${m.name}`, () => (m.name === "set" ? setMatch(st, m) : def.render(st, m)));
    // A match that wrote nothing (`-m tcp` alone) does not stand for the protocol.
    if (st.exprs[m.slot]!.length === 0) st.protoImplied = implied;
  }
  if (target) {
    const r = wrap(`-j ${target.name}`, () => target.def.render(st, target.values));
    st.statements.push(...r.statements);
    st.verdict = r.verdict;
  }
  if (st.protoSlot !== undefined)
    st.exprs[st.protoSlot] =
      st.protoImplied && !st.protoNegated ? [] : [`meta l4proto ${op(st.protoNegated)}${st.proto!}`];
  const matches = st.exprs.flat();
  const tail = [...st.statements, ...(st.verdict !== undefined ? [st.verdict] : [])];
  const nft = [...matches, ...tail].join(" ");
  const out: TranslatedRule = {
    nft: nft === "" ? "counter" : nft,
    nftCounted: [...matches, "counter", ...tail].join(" "),
    comments: st.comments,
    jumps: st.jumps,
    sets: st.sets,
    args: st.args,
  };
  if (st.target !== undefined) out.target = st.target;
  return out;
}

function findOption(
  st: RuleState,
  opt: string,
): { m: RuleState["modules"][number]; def: MatchDef; canonical: string } | undefined {
  for (let k = st.modules.length - 1; k >= 0; k--) {
    const m = st.modules[k]!;
    const def = matchDef(m.name)!;
    const canonical = def.aliases?.[opt] ?? opt;
    if (Object.hasOwn(def.options, canonical)) return { m, def, canonical };
  }
  const implicit = st.proto !== undefined ? IMPLICIT[st.proto] : undefined;
  if (implicit && !st.modules.some((m) => m.name === implicit)) {
    const def = MATCHES[implicit]!;
    const canonical = def.aliases?.[opt] ?? opt;
    if (Object.hasOwn(def.options, canonical)) return { m: st.module(implicit), def, canonical };
  }
  return undefined;
}
