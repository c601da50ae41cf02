/**
 * What the host holds, read once for every attachment: the whole nftables ruleset as text and
 * iptables-save of the nat and filter tables for both families. Each attachment's share is then
 * found by the identity every backend writes (src/cni/attachment.ts): the nftables owner hash in
 * comments, the spoof check's per-attachment chains, upstream's iptables chain names, the
 * firewall's accept rules by address. Reading is one process per tool, whatever the number of
 * attachments, and changes nothing.
 */
import { iptablesChainName, iptablesComment, nftOwnerHash, type Attachment } from "../cni/attachment.js";
import { systemIptables, type IpFamily, type IptablesRunner } from "../iptables/iptables.js";
import { systemRunner, type Runner } from "../process/index.js";
import { systemTools, type HostTools } from "../hoststate/index.js";

export type Component = "masquerade" | "portmap" | "firewall" | "spoofcheck";
export const COMPONENTS: readonly Component[] = ["masquerade", "portmap", "firewall", "spoofcheck"];

/** One table's lines that belong to an attachment, and the component that wrote them. */
export interface Holding {
  component: Component;
  backend: "nftables" | "iptables";
  /** `inet cni_nft_firewall`, `iptables nat`, `ip6tables filter`, ... */
  table: string;
  lines: string[];
}

interface NftTable {
  name: string;
  lines: string[];
}

interface IptTable {
  family: IpFamily;
  table: "nat" | "filter";
  rules: string[];
}

export interface HostSnapshot {
  nft: NftTable[];
  iptables: IptTable[];
  /** Tools that could not be read, with why (absent tools are not listed). */
  unreadable: string[];
}

/**
 * Splits `nft list ruleset` into tables (`<family> <name>`) and their lines, each line prefixed
 * with the chain, set or map it is in (`chain postrouting: ...`, `map dnat: elements = ...`).
 */
export function splitRuleset(text: string): NftTable[] {
  const tables: NftTable[] = [];
  let current: NftTable | undefined;
  let within = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    const table = /^table (\S+) (\S+) \{/.exec(raw);
    const object = /^(chain|set|map|flowtable|counter|quota) (\S+) \{$/.exec(line);
    if (table) {
      tables.push((current = { name: `${table[1]} ${table[2]}`, lines: [] }));
      within = "";
    } else if (object) within = `${object[1]} ${object[2]}`;
    else if (line === "}") within = raw.startsWith("}") ? "" : within;
    else if (current && line) current.lines.push(within ? `${within}: ${line}` : line);
  }
  return tables;
}

export async function readHost(
  opts: { runner?: Runner; iptables?: IptablesRunner; tools?: HostTools } = {},
): Promise<HostSnapshot> {
  const runner = opts.runner ?? systemRunner;
  const ipt = opts.iptables ?? systemIptables;
  const tools = opts.tools ?? systemTools;
  const snap: HostSnapshot = { nft: [], iptables: [], unreadable: [] };
  const jobs: Promise<void>[] = [];
  if (tools.has("nft"))
    jobs.push(
      runner.run({ argv: ["nft", "list", "ruleset"] }).then((r) => {
        if (r.code === 0) snap.nft = splitRuleset(r.stdout);
        else snap.unreadable.push(`nft list ruleset: ${r.stderr.trim()}`);
      }),
    );
  for (const family of [4, 6] as const)
    for (const table of ["nat", "filter"] as const)
      if (tools.has(family === 4 ? "iptables-save" : "ip6tables-save"))
        jobs.push(
          ipt.save(family, table).then(
            (s) => void snap.iptables.push({ family, table, rules: s.rules }),
            (e: Error) => void snap.unreadable.push(e.message),
          ),
        );
  await Promise.all(jobs);
  snap.iptables.sort((a, b) => a.family - b.family || a.table.localeCompare(b.table));
  return snap;
}

/** The component an nftables table belongs to, by the names the backends give their tables. */
function nftComponent(table: string): Component | undefined {
  if (table === "bridge nat" || /spoofcheck/.test(table)) return "spoofcheck";
  if (/masquerade/.test(table)) return "masquerade";
  if (/portmap|hostport/.test(table)) return "portmap";
  if (/firewall/.test(table)) return "firewall";
  return undefined;
}

/** The host address of an IP as iptables-save prints it in a rule (`10.1.0.2/32`). */
function hostCidr(ip: string): string {
  return ip.includes(":") ? `${ip}/128` : `${ip}/32`;
}

/**
 * Everything the host holds for the attachment whose container addresses are `ips` (without
 * prefix): by component and backend, with the lines themselves.
 */
export function holdingsOf(snap: HostSnapshot, a: Attachment, ips: readonly string[]): Holding[] {
  const out: Holding[] = [];
  const owner = nftOwnerHash(a);
  const spoof = [`cni-br-iface-${a.containerId}-${a.ifname}`, `macspoofchk-${a.containerId}-${a.ifname}`];
  for (const t of snap.nft) {
    const component = nftComponent(t.name);
    if (!component) continue;
    const needles = t.name === "bridge nat" ? spoof : [owner];
    const lines = t.lines.filter((l) => needles.some((n) => l.includes(n)));
    if (lines.length) out.push({ component, backend: "nftables", table: t.name, lines });
  }
  const masqChain = iptablesChainName(a);
  const dnatChain = iptablesChainName(a, "DN-");
  const comment = iptablesComment(a);
  const cidrs = ips.map(hostCidr);
  for (const t of snap.iptables) {
    const tool = t.family === 4 ? "iptables" : "ip6tables";
    const by = (component: Component, lines: string[]): void => {
      if (lines.length) out.push({ component, backend: "iptables", table: `${tool} ${t.table}`, lines });
    };
    if (t.table === "nat") {
      by(
        "masquerade",
        t.rules.filter((r) => r.includes(`${masqChain} `) || r.endsWith(masqChain)),
      );
      by(
        "portmap",
        t.rules.filter((r) => r.includes(dnatChain) || (r.includes(comment) && !r.includes(masqChain))),
      );
    } else {
      by(
        "firewall",
        t.rules.filter((r) => r.startsWith("-A CNI-FORWARD ") && cidrs.some((c) => r.includes(` ${c} `))),
      );
    }
  }
  return out;
}

/** component -> backends holding it, e.g. `{ masquerade: ["nftables"], firewall: ["iptables"] }`. */
export function backendsOf(holdings: readonly Holding[]): Partial<Record<Component, string[]>> {
  const out: Partial<Record<Component, string[]>> = {};
  for (const h of holdings) {
    const list = (out[h.component] ??= []);
    if (!list.includes(h.backend)) list.push(h.backend);
  }
  return out;
}
