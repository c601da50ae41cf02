/**
 * The iptables backend: upstream's chains, rules and comments (`CNI-HOSTPORT-DNAT`, per container
 * `CNI-DN-<hash>`, `CNI-HOSTPORT-SETMARK`, `CNI-HOSTPORT-MASQ`), written in the form
 * iptables-save prints them so shared rules are recognised whoever wrote them. Each change is one
 * iptables-save and one iptables-restore --noflush per family, under a lock so parallel ADDs never
 * duplicate the shared rules (upstream's check-then-insert does).
 */
import { withFlock } from "../../../src/cni/index.js";
import { hostPrefix } from "../../../src/address/index.js";
import { iptablesChainName, nftOwnerHash, type Attachment } from "../../../src/cni/attachment.js";
import {
  staleOwners,
  type AttachmentRecords,
  type Effects,
  type HostStateBackend,
} from "../../../src/hoststate/index.js";
import {
  deleteLine,
  hasRule,
  IptablesError,
  quoteArg,
  recordedLines,
  restoreOrFallback,
  type IptablesRunner,
  type SavedTable,
} from "../../../src/iptables/iptables.js";
import { LOCK_FILE, mappingsFor, type Family, type PortMapConf, type PortMapSpec } from "./config.js";

export const TOP_DNAT = "CNI-HOSTPORT-DNAT";
export const SETMARK = "CNI-HOSTPORT-SETMARK";
export const MARK_MASQ = "CNI-HOSTPORT-MASQ";
export const OLD_TOP_SNAT = "CNI-HOSTPORT-SNAT";
/** This backend's records (src/hoststate/records.ts): the chain an ADD is about to write. */
export const RECORDS = "portmap-iptables";

interface ChainRecord {
  chain: string;
  /**
   * Per family, the `-D` lines of the entry rules this ADD writes: what its DEL deletes in one
   * batch without reading the table (with `-F`/`-X` of the chain). Absent in records of earlier
   * versions: their DEL reads.
   */
  del?: Partial<Record<"4" | "6", string[]>>;
  /** The UDP host ports of its DNATs (conntrack entries a DEL flushes). */
  udpPorts?: number[];
}

function recordedUdp(data: unknown): number[] | undefined {
  const ports = (data as Partial<ChainRecord> | undefined)?.udpPorts;
  return Array.isArray(ports) && ports.every((p) => Number.isInteger(p) && p > 0 && p < 65536)
    ? ports
    : undefined;
}

/** The UDP host ports of the DNATs among `rules` of `chains` (`-A` lines). */
function udpDnatPorts(rules: readonly string[], chains: readonly string[]): number[] {
  const udp: number[] = [];
  for (const r of rules)
    if (
      chains.some((chain) => r.startsWith(`-A ${chain} `)) &&
      r.includes(" -j DNAT ") &&
      r.includes(" -p udp ")
    ) {
      const p = / --dport (\d+)/.exec(r)?.[1];
      if (p) udp.push(Number(p));
    }
  return udp;
}

/** The chain a record names, when it is one of ours (a record is a file). */
function recordedChain(data: unknown): string[] {
  const chain = (data as Partial<ChainRecord> | undefined)?.chain;
  return typeof chain === "string" && /^CNI-DN-[0-9a-f]{21}$/.test(chain) ? [chain] : [];
}

export function dnatChainName(network: string, containerId: string): string {
  return iptablesChainName({ network, containerId }, "DN-");
}

/** Upstream's comment on the entry rules, cut to iptables' 255 bytes as upstream does. */
export function dnatComment(network: string, containerId: string): string {
  const c = `dnat name: "${network}" id: "${containerId}"`;
  return c.length <= 255 ? c : c.slice(0, 253) + "...";
}

const entryJump = (chain: string): string => `-A ${chain} -m addrtype --dst-type LOCAL -j ${TOP_DNAT}`;
const PREROUTING_JUMP = entryJump("PREROUTING");

function markDef(bit: number): string {
  const v = (1 << bit) >>> 0;
  return `0x${v.toString(16)}/0x${v.toString(16)}`;
}

/** Quotes an argument for iptables-restore only when it needs it (as iptables-save prints). */
function arg(s: string): string {
  return /^[A-Za-z0-9_.:/,=+@%-]+$/.test(s) ? s : quoteArg(s);
}

/** The shared chains and their rules, as iptables-save prints them. */
function sharedLines(saved: SavedTable, c: PortMapConf): string[] {
  const chains: string[] = [];
  const rules: string[] = [];
  const ensureChain = (name: string): void => {
    if (!saved.chains.has(name) && !chains.includes(`:${name} - [0:0]`)) chains.push(`:${name} - [0:0]`);
  };
  const ensureRule = (line: string, insert = false): void => {
    if (saved.rules.includes(line)) return;
    rules.push(insert ? line.replace(/^-A (\S+)/, "-I $1 1") : line);
  };
  if (c.snat && c.externalSetMarkChain === undefined) {
    const mark = markDef(c.markMasqBit);
    ensureChain(SETMARK);
    ensureRule(
      `-A ${SETMARK} -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark ${mark}`,
    );
    ensureChain(MARK_MASQ);
    ensureRule(`-A ${MARK_MASQ} -m mark --mark ${mark} -j MASQUERADE`);
    ensureRule(
      `-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j ${MARK_MASQ}`,
      true,
    );
  }
  ensureChain(TOP_DNAT);
  for (const entry of ["PREROUTING", "OUTPUT"]) ensureRule(entryJump(entry));
  return [...chains, ...rules];
}

/** The per-container chain's rules and its entry rules (upstream's order). */
export function containerRules(
  c: PortMapConf,
  family: Family,
  address: string,
  subnet: string,
): {
  rules: string[];
  entries: string[];
} {
  const chain = dnatChainName(c.network, c.containerId);
  const setMark = c.externalSetMarkChain ?? SETMARK;
  // Entry rules: one per protocol (sorted) and 15 ports, over all mappings as upstream does.
  const byProto = new Map<string, number[]>();
  for (const m of c.mappings) byProto.set(m.protocol, [...(byProto.get(m.protocol) ?? []), m.hostPort]);
  const conditions = (family === 4 ? c.conditionsV4 : c.conditionsV6).map(arg).join(" ");
  const comment = quoteArg(dnatComment(c.network, c.containerId));
  const entries: string[] = [];
  for (const proto of [...byProto.keys()].sort()) {
    const ports = byProto.get(proto)!;
    for (let i = 0; i < ports.length; i += 15) {
      const spec = ports.slice(i, i + 15).join(",");
      entries.push(
        `-A ${TOP_DNAT} -p ${proto} -m comment --comment ${comment} -m multiport --dports ${spec}${conditions ? ` ${conditions}` : ""} -j ${chain}`,
      );
    }
  }
  const rules: string[] = [];
  const to = family === 4 ? `${address}` : `[${address}]`;
  for (const m of mappingsFor(c, family)) {
    const dst = m.hostIP !== undefined ? ` -d ${hostPrefix(m.hostIP)}` : "";
    const match = `-p ${m.protocol} -m ${m.protocol} --dport ${m.hostPort}`;
    if (c.snat) {
      const src = c.masqAll ? (family === 4 ? "0.0.0.0/0" : "::/0") : subnet;
      // iptables-save leaves out a source of 0.0.0.0/0 or ::/0.
      const s = c.masqAll ? "" : ` -s ${src}`;
      rules.push(`-A ${chain}${s}${dst} ${match} -j ${setMark}`);
      if (family === 4 && !c.masqAll) rules.push(`-A ${chain} -s 127.0.0.1/32${dst} ${match} -j ${setMark}`);
    }
    rules.push(`-A ${chain}${dst} ${match} -j DNAT --to-destination ${to}:${m.containerPort}`);
  }
  return { rules, entries };
}

/** Lines removing a per-container chain and every jump to it from `entryChain`. */
function removeChainLines(saved: SavedTable, chain: string, entryChain: string): string[] {
  const lines = saved.rules
    .filter((r) => r.startsWith(`-A ${entryChain} `) && r.endsWith(` -j ${chain}`))
    .map(deleteLine);
  if (saved.chains.has(chain)) lines.push(`-F ${chain}`, `-X ${chain}`);
  return lines;
}

export class IptablesPortMapper implements HostStateBackend<PortMapSpec> {
  readonly component = "portmap";
  readonly name = "iptables";
  constructor(
    private readonly ipt: IptablesRunner,
    private readonly records: AttachmentRecords,
  ) {}

  present(): boolean {
    return this.ipt.available(4) || this.ipt.available(6);
  }

  private families(): Family[] {
    return ([4, 6] as const).filter((f) => this.ipt.available(f));
  }

  /**
   * A container with no record (so no earlier ADD of ours) is written without reading the table
   * when PREROUTING's jump to CNI-HOSTPORT-DNAT is there (listed alone: a flush of the table takes
   * it): `-N` of its chain (a chain left by upstream's ADD fails it), its rules and its entry
   * rules, in one batch, which fails whole when a shared chain it jumps or appends to is missing.
   * No `-C` of the other shared rules: in a batch, one makes iptables-nft load every rule of the
   * table (docs/performance.md). Otherwise, and when the batch fails, and for a repeated ADD:
   * one read, and what is missing written, shared rules included.
   */
  async setUp(a: Attachment, spec: PortMapSpec): Promise<Effects> {
    const c: PortMapConf = { ...a, ...spec };
    const chain = dnatChainName(c.network, c.containerId);
    const fresh = this.records.read(nftOwnerHash(a)) === undefined;
    const planned = c.containers.map((ct) => ({
      ct,
      ...containerRules(c, ct.family, ct.address, ct.subnet),
    }));
    const del: ChainRecord["del"] = {};
    for (const p of planned) (del[`${p.ct.family}`] ??= []).push(...p.entries.map(deleteLine));
    // Recorded before the chain exists: GC finds it by the record even when a flush of
    // CNI-HOSTPORT-DNAT took the commented entry rules away.
    this.records.write(nftOwnerHash(a), {
      chain,
      del,
      udpPorts: [
        ...new Set(
          udpDnatPorts(
            planned.flatMap((p) => p.rules),
            [chain],
          ),
        ),
      ],
    } satisfies ChainRecord);
    await withFlock(LOCK_FILE, () =>
      Promise.all(
        planned.map(async ({ ct, rules, entries }) =>
          restoreOrFallback(
            this.ipt,
            ct.family,
            "nat",
            fresh && (await hasRule(this.ipt, ct.family, "nat", PREROUTING_JUMP))
              ? [`-N ${chain}`, ...rules, ...entries]
              : undefined,
            async () => {
              const saved = await this.ipt.save(ct.family, "nat");
              const lines = [
                ...sharedLines(saved, c),
                // Declaring the chain creates it, or empties it when a repeated ADD finds it.
                `:${chain} - [0:0]`,
                ...saved.rules
                  .filter((r) => r.startsWith(`-A ${TOP_DNAT} `) && r.endsWith(` -j ${chain}`))
                  .map(deleteLine),
                ...rules,
                ...entries,
              ];
              await this.ipt.restore(ct.family, "nat", lines);
            },
          ),
        ),
      ),
    );
    return { udpPorts: c.mappings.filter((m) => m.protocol === "udp").map((m) => m.hostPort) };
  }

  async check(a: Attachment, spec: PortMapSpec): Promise<string[]> {
    const c: PortMapConf = { ...a, ...spec };
    const missing: string[] = [];
    const chain = dnatChainName(c.network, c.containerId);
    for (const ct of c.containers) {
      const saved = await this.ipt.save(ct.family, "nat");
      const tool = ct.family === 4 ? "iptables" : "ip6tables";
      // The shared chains and rules first (what ADD would add): after `iptables -t nat -F` the
      // chains stay, empty, and no container's mapping works.
      for (const line of sharedLines(saved, c)) {
        const declared = /^:(\S+) /.exec(line)?.[1];
        missing.push(
          declared
            ? `${tool} chain ${declared} in table nat`
            : `${tool} rule ${line.replace(/^-I (\S+) 1/, "-A $1")}`,
        );
      }
      if (!saved.chains.has(chain)) {
        missing.push(`${tool} chain ${chain} in table nat`);
        continue;
      }
      const { rules, entries } = containerRules(c, ct.family, ct.address, ct.subnet);
      for (const r of rules) if (!saved.rules.includes(r)) missing.push(`${tool} rule ${r}`);
      const have = saved.rules.filter((r) => r.startsWith(`-A ${TOP_DNAT} `) && r.endsWith(` -j ${chain}`));
      for (const e of entries) {
        const ports = / --dports (\S+)/.exec(e)?.[1];
        if (!have.some((h) => h.includes(` --dports ${ports}`))) missing.push(`${tool} rule ${e}`);
      }
    }
    return missing;
  }

  /** Its DNAT chain (or the older SNAT one) or a jump to it, in any family. */
  async holds(a: Attachment): Promise<boolean> {
    const chains = [dnatChainName(a.network, a.containerId), iptablesChainName(a, "SN-")];
    for (const family of this.families()) {
      const saved = await this.ipt.save(family, "nat");
      for (const chain of chains)
        if (saved.chains.has(chain) || saved.rules.some((r) => r.endsWith(` -j ${chain}`))) return true;
    }
    return false;
  }

  /**
   * With a record of this version: per recorded family one batch of exactly its deletions, no
   * read; a family whose batch fails (something already gone, or changed by hand) and a DEL
   * without such a record read the table and delete what is there.
   */
  async remove(a: Attachment): Promise<Effects> {
    const record = this.records.read(nftOwnerHash(a));
    const chain = dnatChainName(a.network, a.containerId);
    const fast = this.families().map((f) => ({
      f,
      lines: recordedLines(record, chain, "del", f, `-D ${TOP_DNAT} `),
    }));
    const udpRecorded = recordedUdp(record);
    let udp: number[];
    if (udpRecorded && fast.some((x) => x.lines)) {
      const slow: Family[] = [];
      await withFlock(LOCK_FILE, () =>
        Promise.all(
          fast
            .filter((x) => x.lines)
            .map(({ f, lines }) =>
              this.ipt.restore(f, "nat", [...lines!, `-F ${chain}`, `-X ${chain}`]).catch((e: unknown) => {
                if (!(e instanceof IptablesError)) throw e;
                slow.push(f);
              }),
            ),
        ),
      );
      udp = [...udpRecorded, ...(slow.length ? await this.removeChains([a], [], slow) : [])];
    } else udp = await this.removeChains([a]);
    this.records.remove(nftOwnerHash(a));
    return { udpPorts: [...new Set(udp)] };
  }

  /** The chains of `attachments` (and upstream's old SNAT chains) and their entry rules; UDP host ports of their DNATs. */
  private async removeChains(
    attachments: readonly Attachment[],
    more: readonly string[] = [],
    families: readonly Family[] = this.families(),
  ): Promise<number[]> {
    const chains = [
      ...new Set([...attachments.map((a) => dnatChainName(a.network, a.containerId)), ...more]),
    ];
    const oldSnat = attachments.map((a) => iptablesChainName(a, "SN-"));
    const udp: number[] = [];
    await withFlock(LOCK_FILE, () =>
      Promise.all(
        families.map(async (family) => {
          const saved = await this.ipt.save(family, "nat");
          udp.push(...udpDnatPorts(saved.rules, chains));
          const lines = [
            ...chains.flatMap((chain) => removeChainLines(saved, chain, TOP_DNAT)),
            ...oldSnat.flatMap((chain) => removeChainLines(saved, chain, OLD_TOP_SNAT)),
          ];
          if (lines.length) await this.ipt.restore(family, "nat", lines);
        }),
      ),
    );
    return [...new Set(udp)];
  }

  /**
   * From the records, and (for chains upstream's portmap made) the entry comments, which name
   * network and container: every chain of `network` whose attachment is not valid goes.
   */
  async gc(network: string, valid: readonly Attachment[]): Promise<Effects> {
    const stale = staleOwners(this.records, network, valid);
    const keep = new Set(valid.map((a) => dnatChainName(network, a.containerId)));
    const marker = `--comment ${quoteArg(`dnat name: "${network}" id: "`).slice(0, -1)}`;
    const commented = new Set<string>();
    for (const family of this.families()) {
      const saved = await this.ipt.save(family, "nat");
      for (const r of saved.rules) {
        const m = / -j (CNI-DN-[0-9a-f]{21})$/.exec(r);
        if (r.startsWith(`-A ${TOP_DNAT} `) && m && r.includes(marker) && !keep.has(m[1]!))
          commented.add(m[1]!);
      }
    }
    const recorded = stale.flatMap((owner) => recordedChain(this.records.read(owner)));
    if (recorded.length || commented.size) await this.removeChains([], [...recorded, ...commented]);
    for (const owner of stale) this.records.remove(owner);
    return {};
  }
}
