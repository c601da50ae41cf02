/**
 * `cni-nft inspect CONTAINER-ID|ADDRESS|HOST-PORT [--json]`: everything the host holds for one
 * attachment (all of them when a container is on several networks): its nftables rules and
 * set/map elements by table, its iptables rules, its host-local reservation, how many conntrack
 * entries its addresses have, the cached result and config, and which plugin made what.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CniError, ErrorCode } from "../cni/index.js";
import { systemTools } from "../hoststate/index.js";
import { systemRunner } from "../process/index.js";
import { readCache, viewOf, type AttachmentView, type CachedAttachment } from "./attachments.js";
import { readHost, type Component, type Holding } from "./hostview.js";
import { SETTINGS_HELP, settingsFrom } from "./settings.js";
import { VIEW_OPTIONS, runHostView, viewPainter } from "./hostcmd.js";
import { type OutStream, type Paint } from "./table.js";

export const INSPECT_HELP = `Usage: cni-nft inspect CONTAINER-ID|ADDRESS|HOST-PORT [--json]

Everything the host holds for the attachments of a container (a full ID or a prefix of one), of
an address (10.88.0.5, fd00::5) or of a host port (8080, 8080/tcp): nftables rules and set/map
elements by table, iptables rules, the host-local reservation, the number of conntrack entries
of its addresses, the cached result and config, and which plugin made what.

Options:
  --json               one JSON object per attachment, in an array (for tools)
  --no-color           no colour even on a terminal (also: NO_COLOR=1)
${SETTINGS_HELP}
  -h, --help           this help

Examples:
  cni-nft inspect 3f2a9c1e0b7d
  cni-nft inspect 10.88.0.5
  cni-nft inspect 8080/tcp --json | jq '.[0].nftables'`;

export interface InspectIo {
  env: Record<string, string | undefined>;
  out(s: string): void;
  err(s: string): void;
  stdout?: OutStream;
}

/** host-local's data directory when the config names none. */
const HOST_LOCAL_DATA_DIR = "/var/lib/cni/networks";

interface Reservation {
  address: string;
  file: string;
  /** The file's content, `<container>\r\n<ifname>`; undefined when there is none. */
  content?: string;
  /** The file names this attachment. */
  ours: boolean;
}

interface MadeBy {
  plugin: string;
  made: string[];
}

export interface Inspection {
  attachment: AttachmentView;
  nftables: Record<string, string[]>;
  iptables: Record<string, string[]>;
  ipam: { type: string; reservations: Reservation[] };
  /** Conntrack entries with one of its addresses as source or destination; null without conntrack. */
  conntrackEntries: number | null;
  plugins: MadeBy[];
  cachedResult: unknown;
  config: unknown;
}

function matches(c: CachedAttachment, v: AttachmentView, what: string): boolean {
  const id = c.entry.containerId;
  if (id === what || (what.length >= 4 && id.startsWith(what))) return true;
  if (v.addresses.some((a) => a.split("/")[0] === what)) return true;
  if (!/^\d{1,5}(\/(tcp|udp|sctp))?$/.test(what)) return false;
  // a mapping reads `[hostIP:]port/proto->containerPort`
  const hostPorts = v.ports.map((p) => p.split("->")[0]!.replace(/^.*:/, ""));
  return hostPorts.some((hp) => hp === what || hp.startsWith(`${what}/`));
}

function decodeConfig(c: CachedAttachment): Record<string, unknown> {
  try {
    return JSON.parse(Buffer.from(c.entry.config, "base64").toString("utf8")) as Record<string, unknown>;
  } catch {
    return {};
  }
}

function pluginsOf(config: Record<string, unknown>): Record<string, unknown>[] {
  const p = config.plugins;
  return Array.isArray(p) ? (p as Record<string, unknown>[]) : [config];
}

async function reservations(plugins: Record<string, unknown>[], c: CachedAttachment, v: AttachmentView) {
  const ipamConf = plugins
    .map((p) => p.ipam)
    .find((i): i is Record<string, unknown> => typeof i === "object" && i !== null);
  const type = typeof ipamConf?.type === "string" ? ipamConf.type : "";
  if (type !== "host-local") return { type, reservations: [] };
  const dataDir =
    typeof ipamConf?.dataDir === "string" && ipamConf.dataDir ? ipamConf.dataDir : HOST_LOCAL_DATA_DIR;
  const out: Reservation[] = [];
  for (const cidr of v.addresses) {
    const address = cidr.split("/")[0]!;
    const file = join(dataDir, c.entry.networkName, address);
    const content = await readFile(file, "utf8").catch(() => undefined);
    const [id, ifname] = (content ?? "").split(/\r?\n/);
    out.push({
      address,
      file,
      ...(content !== undefined ? { content } : {}),
      ours: id?.trim() === c.entry.containerId && (ifname === undefined || ifname.trim() === c.entry.ifName),
    });
  }
  return { type, reservations: out };
}

async function conntrackCount(addresses: string[]): Promise<number | null> {
  if (!systemTools.has("conntrack") || !addresses.length) return addresses.length ? null : 0;
  const ips = addresses.map((a) => a.split("/")[0]!);
  let n = 0;
  for (const family of ["ipv4", "ipv6"]) {
    const r = await systemRunner.run({ argv: ["conntrack", "-L", "-f", family] }).catch(() => undefined);
    if (!r || r.code !== 0) continue;
    n += r.stdout
      .split("\n")
      .filter((l) => ips.some((ip) => l.includes(`src=${ip} `) || l.includes(`dst=${ip} `))).length;
  }
  return n;
}

/** Which plugin of the config made each part, from the component each holding belongs to. */
function madeBy(plugins: Record<string, unknown>[], holdings: Holding[], v: AttachmentView): MadeBy[] {
  const main = typeof plugins[0]?.type === "string" ? plugins[0].type : "?";
  const byComponent: Record<Component, string> = {
    masquerade: main,
    spoofcheck: main,
    portmap: "portmap",
    firewall: "firewall",
  };
  return plugins.map((p, i) => {
    const type = String(p.type);
    const made: string[] = [];
    if (i === 0) {
      made.push(`interface ${v.ifname} in ${v.netns}`);
      const ipam = (p.ipam as Record<string, unknown> | undefined)?.type;
      if (typeof ipam === "string") made.push(`addresses ${v.addresses.join(", ") || "-"} (IPAM ${ipam})`);
    }
    for (const h of holdings)
      if (byComponent[h.component] === type && (i === 0 || h.component === type))
        made.push(`${h.component}: ${h.lines.length} ${h.backend} line(s) in ${h.table}`);
    return { plugin: type, made };
  });
}

async function inspectOne(
  c: CachedAttachment,
  view: AttachmentView,
  holdings: Holding[],
): Promise<Inspection> {
  const config = decodeConfig(c);
  const plugins = pluginsOf(config);
  const by = (backend: string): Record<string, string[]> =>
    Object.fromEntries(holdings.filter((h) => h.backend === backend).map((h) => [h.table, h.lines]));
  return {
    attachment: view,
    nftables: by("nftables"),
    iptables: by("iptables"),
    ipam: await reservations(plugins, c, view),
    conntrackEntries: await conntrackCount(view.addresses),
    plugins: madeBy(plugins, holdings, view),
    cachedResult: c.entry.result ?? null,
    config,
  };
}

function human(i: Inspection, paint: Paint): string {
  const v = i.attachment;
  const out: string[] = [];
  const head = (s: string): void => void out.push("", paint(s, "bold"));
  out.push(
    paint(`${v.network} ${v.containerId} ${v.ifname}`, "bold"),
    `  netns       ${v.netns}`,
    `  state       ${v.problem ? paint(`${v.state}: ${v.problem}`, "red") : paint(v.state, "green")}`,
    `  addresses   ${v.liveAddresses.join(", ") || v.addresses.join(", ") || "-"}`,
    `  mac         ${v.mac || "-"}`,
    `  ports       ${v.ports.join(", ") || "-"}`,
    `  cache       ${v.cacheFile}`,
  );
  for (const [title, tables] of [
    ["nftables", i.nftables],
    ["iptables", i.iptables],
  ] as const) {
    head(title);
    if (!Object.keys(tables).length) out.push("  (nothing)");
    for (const [table, lines] of Object.entries(tables))
      out.push(`  ${table}`, ...lines.map((l) => `    ${l}`));
  }
  head(`IPAM (${i.ipam.type || "none"})`);
  if (!i.ipam.reservations.length) out.push("  (no host-local reservation to show)");
  for (const r of i.ipam.reservations)
    out.push(
      `  ${r.address}  ${r.file}  ${r.content === undefined ? paint("missing", "red") : r.ours ? "reserved for this attachment" : paint(`held by ${JSON.stringify(r.content)}`, "yellow")}`,
    );
  head("conntrack");
  out.push(`  ${i.conntrackEntries === null ? "conntrack not installed" : `${i.conntrackEntries} entries`}`);
  head("plugins");
  for (const p of i.plugins) out.push(`  ${p.plugin}`, ...p.made.map((m) => `    ${m}`));
  head("cached result");
  out.push(
    ...JSON.stringify(i.cachedResult, null, 2)
      .split("\n")
      .map((l) => `  ${l}`),
  );
  head("config");
  out.push(
    ...JSON.stringify(i.config, null, 2)
      .split("\n")
      .map((l) => `  ${l}`),
  );
  return out.join("\n") + "\n";
}

export async function inspect(argv: string[], io: InspectIo): Promise<number> {
  return runHostView("inspect", argv, io, async (json) => {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: VIEW_OPTIONS,
    });
    if (values.help) {
      io.out(INSPECT_HELP + "\n");
      return 0;
    }
    if (positionals.length !== 1)
      throw new CniError(
        ErrorCode.InvalidEnvironment,
        `give one CONTAINER-ID, ADDRESS or HOST-PORT (e.g. cni-nft inspect 10.88.0.5); 'cni-nft list' shows them`,
      );
    const what = positionals[0]!;
    const s = settingsFrom(values, io.env);
    const snap = await readHost();
    const found: Inspection[] = [];
    for (const c of await readCache(s.cacheDir)) {
      const { view, holdings } = await viewOf(c, snap);
      if (matches(c, view, what)) found.push(await inspectOne(c, view, holdings));
    }
    if (!found.length)
      throw new CniError(
        ErrorCode.InvalidEnvironment,
        `no attachment in ${s.cacheDir}/results has the container ID, address or host port "${what}"; 'cni-nft list' shows what there is`,
      );
    if (json) io.out(JSON.stringify(found, null, 2) + "\n");
    else {
      const paint = viewPainter(values["no-color"], io);
      io.out(found.map((f) => human(f, paint)).join("\n"));
    }
    return 0;
  });
}
