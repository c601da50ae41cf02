/**
 * The iptables backend: upstream's layout (per container a `CNI-<hash>` chain in `nat` that
 * accepts the container's subnet and masquerades the rest but multicast, jumped to from
 * POSTROUTING with the comment `name: "<net>" id: "<id>"`). ADD reads the table and applies one
 * iptables-restore per IP family (an earlier ADD's jumps replaced, as upstream's AppendUnique
 * avoids copies); DEL reads the table once and removes every copy of the jump, then the chain.
 *
 * Without reading (docs/bridge-ptp.md): an ADD that has no record of the attachment (so no
 * earlier ADD of ours) writes `-N` of its chain, the chain's rules and the jumps in one batch, and
 * records the jumps; a DEL with that record deletes exactly those and the chain in one batch. A
 * batch fails whole when the host is not so (the chain exists, a jump is gone): then the table is
 * read and the change computed from it, as without a record.
 */
import { iptablesChainName, iptablesComment, type Attachment } from "../cni/attachment.js";
import { nftOwnerHash } from "../cni/attachment.js";
import { NO_EFFECTS, type Effects, type HostStateBackend } from "../hoststate/contract.js";
import { staleOwners, type AttachmentRecords } from "../hoststate/records.js";
import { addressOf, familyOf, subnetOf } from "../address/index.js";
import { COMPONENT, type MasqSpec } from "./ipmasq.js";
import {
  deleteLine,
  quoteArg,
  recordedLines,
  restoreOrFallback,
  type IpFamily,
  type IptablesRunner,
  type SavedTable,
} from "../iptables/iptables.js";

const FAMILIES = [4, 6] as const;
/** This backend's records (src/hoststate/records.ts): per family the jumps an ADD is about to write. */
export const IPTABLES_MASQ_RECORDS = "masquerade-iptables";

interface JumpRecord {
  chain: string;
  jumps: Partial<Record<"4" | "6", string[]>>;
}

/** The chain's rules and the POSTROUTING jumps to it of one family's addresses (upstream's). */
export function masqLines(
  a: Attachment,
  family: IpFamily,
  addrs: readonly string[],
): { rules: string[]; jumps: string[] } {
  const chain = iptablesChainName(a);
  const comment = `-m comment --comment ${quoteArg(iptablesComment(a))}`;
  const multicast = family === 4 ? "224.0.0.0/4" : "ff00::/8";
  const host = family === 4 ? "32" : "128";
  const rules = addrs.map((x) => `-A ${chain} -d ${subnetOf(x)} ${comment} -j ACCEPT`);
  rules.push(`-A ${chain} ! -d ${multicast} ${comment} -j MASQUERADE`);
  return {
    rules,
    jumps: addrs.map((x) => `-A POSTROUTING -s ${addressOf(x)}/${host} ${comment} -j ${chain}`),
  };
}

function jumpsTo(saved: SavedTable, chain: string): string[] {
  return saved.rules.filter((r) => r.startsWith("-A POSTROUTING ") && r.endsWith(` -j ${chain}`));
}

/** Lines removing every POSTROUTING jump to `chain`, then the chain. */
function removeChainLines(saved: SavedTable, chain: string): string[] {
  const lines = jumpsTo(saved, chain).map(deleteLine);
  if (saved.chains.has(chain)) lines.push(`-F ${chain}`, `-X ${chain}`);
  return lines;
}

export class IptablesMasq implements HostStateBackend<MasqSpec> {
  readonly component = COMPONENT;
  readonly name = "iptables";
  /** Without `records` (a caller that only reads, GCs or checks), every change reads the table. */
  constructor(
    private readonly ipt: IptablesRunner,
    private readonly records?: AttachmentRecords,
  ) {}

  present(): boolean {
    return this.ipt.available(4);
  }

  async setUp(a: Attachment, s: MasqSpec): Promise<Effects> {
    const chain = iptablesChainName(a);
    const planned = FAMILIES.map((family) => {
      const addrs = s.addresses.filter((x) => familyOf(x) === family);
      return { family, ...masqLines(a, family, addrs), used: addrs.length > 0 };
    }).filter((p) => p.used);
    const fresh = this.records !== undefined && this.records.read(nftOwnerHash(a)) === undefined;
    const jumps: JumpRecord["jumps"] = {};
    for (const p of planned) jumps[`${p.family}`] = p.jumps;
    this.records?.write(nftOwnerHash(a), { chain, jumps } satisfies JumpRecord);
    for (const { family, rules, jumps } of planned)
      await restoreOrFallback(
        this.ipt,
        family,
        "nat",
        // `-N` fails when the chain exists, and no jump to a missing chain can.
        fresh ? [`-N ${chain}`, ...rules, ...jumps] : undefined,
        async () => {
          // Declaring the chain empties it; the jumps of an earlier ADD go, so a repeat leaves one copy.
          const saved = await this.ipt.save(family, "nat");
          await this.ipt.restore(family, "nat", [
            ...jumpsTo(saved, chain).map(deleteLine),
            `:${chain} - [0:0]`,
            ...rules,
            ...jumps,
          ]);
        },
      );
    return NO_EFFECTS;
  }

  private families(): IpFamily[] {
    return FAMILIES.filter((f) => this.ipt.available(f));
  }

  /** With a record: per recorded family one batch of its jumps' and chain's deletion; else (or when that fails) read. */
  async remove(a: Attachment): Promise<Effects> {
    const chain = iptablesChainName(a);
    const record = this.records?.read(nftOwnerHash(a));
    const fast = this.families().map((f) => ({
      f,
      jumps: recordedLines(record, chain, "jumps", f, "-A POSTROUTING "),
    }));
    const recorded = fast.some((x) => x.jumps);
    await Promise.all(
      fast
        .filter((x) => x.jumps || !recorded)
        .map(({ f, jumps }) =>
          restoreOrFallback(
            this.ipt,
            f,
            "nat",
            jumps && [...jumps.map(deleteLine), `-F ${chain}`, `-X ${chain}`],
            async () => this.ipt.restore(f, "nat", removeChainLines(await this.ipt.save(f, "nat"), chain)),
          ),
        ),
    );
    this.records?.remove(nftOwnerHash(a));
    return NO_EFFECTS;
  }

  /**
   * Upstream's iptables backend has no GC; the comment names network and container, so ours
   * removes the chains of containers of this network that are not in the valid list.
   */
  async gc(network: string, valid: readonly Attachment[]): Promise<Effects> {
    const keep = new Set(valid.map((a) => iptablesChainName({ network, containerId: a.containerId })));
    const marker = `--comment ${quoteArg(iptablesComment({ network, containerId: "" })).slice(0, -3)}`; // name: "<net>" id: "
    for (const family of this.families()) {
      const saved = await this.ipt.save(family, "nat");
      const stale = new Set<string>();
      for (const r of saved.rules) {
        const m = / -j (CNI-[0-9a-f]{24})$/.exec(r);
        if (r.startsWith("-A POSTROUTING ") && m && r.includes(marker) && !keep.has(m[1]!)) stale.add(m[1]!);
      }
      await this.ipt.restore(
        family,
        "nat",
        [...stale].flatMap((chain) => removeChainLines(saved, chain)),
      );
    }
    // The records of what went (their chains were found above by the comment).
    if (this.records)
      for (const owner of staleOwners(this.records, network, valid)) this.records.remove(owner);
    return NO_EFFECTS;
  }

  /** Its chain or a POSTROUTING jump to it, in any family. */
  async holds(a: Attachment): Promise<boolean> {
    const chain = iptablesChainName(a);
    for (const family of this.families()) {
      const saved = await this.ipt.save(family, "nat");
      if (saved.chains.has(chain) || saved.rules.some((r) => r.endsWith(` -j ${chain}`))) return true;
    }
    return false;
  }

  async check(a: Attachment, s: MasqSpec): Promise<string[]> {
    const chain = iptablesChainName(a);
    const missing: string[] = [];
    for (const family of FAMILIES) {
      const addrs = s.addresses.filter((x) => familyOf(x) === family);
      if (addrs.length === 0) continue;
      const saved = await this.ipt.save(family, "nat");
      const jumps = jumpsTo(saved, chain);
      if (
        !saved.chains.has(chain) ||
        !saved.rules.some((r) => r.startsWith(`-A ${chain} `) && r.includes("MASQUERADE"))
      )
        missing.push(
          `${family === 4 ? "iptables" : "ip6tables"} chain ${chain} with a MASQUERADE rule in table nat`,
        );
      for (const x of addrs)
        if (!jumps.some((j) => j.includes(` -s ${addressOf(x)}/`)))
          missing.push(`POSTROUTING jump to ${chain} for ${addressOf(x)}`);
    }
    return missing;
  }
}
