/**
 * `-m set --match-set NAME FLAGS`: a lookup in a named nft set whose key is built from the
 * packet fields the flags pick, one per dimension of the ipset type.
 */
import type { MatchDef } from "./matches.js";
import { op, type ModuleInstance, type RuleState } from "./state.js";
import type { SetType } from "./types.js";

export const SET_NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,30}$/;

const DIMENSIONS: Record<SetType, number> = {
  "hash:ip": 1,
  "hash:net": 1,
  "hash:ip,port": 2,
  "hash:net,iface": 2,
};

export const SET_MATCH: MatchDef = {
  options: { "--match-set": 2 },
  negatable: ["--match-set"],
  render: () => [],
};

export function setMatch(st: RuleState, m: ModuleInstance): string[] {
  const v = m.values.get("--match-set");
  if (!v) throw new Error("needs --match-set NAME src|dst");
  const [name = "", flagText = ""] = v.args;
  if (!SET_NAME_RE.test(name))
    throw new Error(`"${name}" is not a set name (a letter, then letters, digits, _ . -; at most 31)`);
  const type = st.ctx.setType?.(name);
  if (type === undefined) throw new Error(`set "${name}" is not declared (give its members first)`);
  const flags = flagText.split(",");
  if (flags.some((f) => f !== "src" && f !== "dst")) throw new Error(`"${flagText}" is not src/dst flags`);
  const dims = DIMENSIONS[type];
  if (flags.length !== dims)
    throw new Error(
      `a ${type} set needs ${dims} flag${dims > 1 ? "s (src,dst …)" : " (src or dst)"}, one per dimension`,
    );
  const ip = st.ipKw;
  const field = (f: string | undefined, kind: "addr" | "port"): string => (f === "src" ? "s" : "d") + kind;
  const addr = `${ip} ${field(flags[0], "addr")}`;
  let key: string;
  if (type === "hash:ip" || type === "hash:net") key = addr;
  else if (type === "hash:ip,port") key = `${addr} . meta l4proto . th ${field(flags[1], "port")}`;
  else key = `${addr} . ${flags[1] === "src" ? "iifname" : "oifname"}`;
  st.sets.push(name);
  const ref = st.ctx.setRef?.(name) ?? name;
  return [`${key} ${op(v.negated)}@${ref}`];
}
