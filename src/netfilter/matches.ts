/**
 * The iptables matches the translator takes (`-m NAME` and the options of the implicit protocol
 * match), each collected while reading and rendered as nft expressions at the end of the rule.
 * A render function throws a plain Error naming what is wrong; the translator adds the rule.
 */
import { META_MATCHES } from "./match-meta.js";
import { PROTO_MATCHES } from "./match-proto.js";
import type { MatchDef } from "./match-def.js";

export type { MatchDef } from "./match-def.js";
export { protoName } from "./match-proto.js";

export const MATCHES: Readonly<Record<string, MatchDef>> = { ...PROTO_MATCHES, ...META_MATCHES };
