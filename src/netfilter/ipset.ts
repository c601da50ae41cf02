/**
 * ipset save output read back, and ipset restore input for the owner's sets: creations and
 * member changes go before the iptables rules that use them, destructions after.
 */
import { canonicalMember } from "./sets.js";
import { SET_TYPES, type IpVersion, type SetType } from "./types.js";

/** Members an ipset may hold: large enough for the sets kube-proxy and Neutron build. */
export const IPSET_MAXELEM = 1048576;

export interface SavedIpset {
  type: SetType | undefined;
  family: IpVersion;
  members: Set<string>;
}

/** The sets of `ipset save` whose names start with prefix. */
export function parseIpsetSave(text: string, prefix: string): Map<string, SavedIpset> {
  const out = new Map<string, SavedIpset>();
  for (const line of text.split("\n")) {
    const create = /^create (\S+) (\S+)(.*)$/.exec(line);
    if (create && create[1]!.startsWith(prefix)) {
      const type = SET_TYPES.find((t) => t === create[2]);
      out.set(create[1]!, { type, family: / family inet6\b/.test(create[3]!) ? 6 : 4, members: new Set() });
      continue;
    }
    const add = /^add (\S+) (\S+)/.exec(line);
    if (!add) continue;
    const set = out.get(add[1]!);
    if (!set) continue;
    try {
      set.members.add(set.type ? canonicalMember(set.type, set.family, add[2]!).text : add[2]!);
    } catch {
      set.members.add(add[2]!);
    }
  }
  return out;
}

export function ipsetCreate(name: string, type: SetType, family: IpVersion): string {
  return `create ${name} ${type} family ${family === 4 ? "inet" : "inet6"} maxelem ${IPSET_MAXELEM}`;
}
