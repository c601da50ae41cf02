/**
 * Shared pieces of the match definitions: the definition type and the value lookup.
 */
import type { ModuleInstance, RuleState } from "./state.js";

export interface MatchDef {
  /** Option → number of arguments; aliases point at the canonical option. */
  options: Record<string, number>;
  aliases?: Record<string, string>;
  /** Options that take `!`. */
  negatable?: readonly string[];
  render(st: RuleState, m: ModuleInstance): string[];
}

export type Values = ModuleInstance["values"];
export const get = (v: Values, k: string): { args: string[]; negated: boolean } | undefined => v.get(k);

export function fail(msg: string): never {
  throw new Error(msg);
}

/** Checks the rule names the protocol a match needs, and that its expressions imply it. */
export function requireProto(st: RuleState, name: string, protos: readonly string[]): string {
  if (st.proto === undefined || st.protoNegated || !protos.includes(st.proto))
    throw new Error(`needs ${protos.map((p) => `-p ${p}`).join(" or ")} before it`);
  st.protoImplied = true;
  return st.proto === "icmpv6" ? "icmpv6" : st.proto === "udplite" ? "udplite" : st.proto;
}
