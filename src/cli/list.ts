/**
 * `cni-nft list [--json] [--check] [NETWORK...]`: every attachment in libcni's cache joined with
 * the live host: interface, addresses, MAC, host ports, and the backend holding each component.
 * With --check, every attachment's CHECK through its network's plugins (progress on a terminal).
 */
import { parseArgs } from "node:util";
import { CniError, ErrorCode } from "../cni/index.js";
import { readCache, viewOf, type AttachmentView, type CachedAttachment } from "./attachments.js";
import { COMPONENTS, readHost } from "./hostview.js";
import { checkNetworkList, loadNetwork, parseConfList, type NetworkConfigList } from "./libcni.js";
import { createProgress, type ProgressStream } from "./progress.js";
import { SETTINGS_HELP, settingsFrom, type Settings } from "./settings.js";
import { VIEW_OPTIONS, runHostView, viewPainter } from "./hostcmd.js";
import { renderTable, type OutStream, type Paint } from "./table.js";

export const LIST_HELP = `Usage: cni-nft list [--json] [--check] [NETWORK...]

Every attachment on this host (from libcni's result cache, as podman, cnitool and cni-nft write
it) with what is live: the container's interface and addresses, its MAC, host port mappings, and
which backend (nftables, iptables) holds its masquerade, portmap, firewall and spoof check
state. An attachment whose namespace or interface is gone is marked so. With NETWORK, only the
attachments of those networks.

Options:
  --check              run CHECK for every attachment through its network's plugins (HEALTH
                       column); progress on a terminal, JSON events on stderr with --json
  --json               the attachments as a JSON array (for tools)
  --no-color           no colour even on a terminal (also: NO_COLOR=1)
${SETTINGS_HELP}
  -h, --help           this help

Examples:
  cni-nft list
  cni-nft list --check podman
  cni-nft list --json | jq '.[] | select(.state != "up")'`;

export interface ListIo {
  env: Record<string, string | undefined>;
  out(s: string): void;
  err(s: string): void;
  stdout?: OutStream;
  stderr?: ProgressStream;
}

const SHORT_BACKEND: Record<string, string> = { nftables: "nft", iptables: "ipt", firewalld: "fwd" };

function configOf(c: CachedAttachment, lists: Map<string, NetworkConfigList>): NetworkConfigList {
  const fromDir = lists.get(c.entry.networkName);
  if (fromDir) return fromDir;
  // the network left the config directory: CHECK against the config it was added with
  return parseConfList(Buffer.from(c.entry.config, "base64").toString("utf8"), `${c.file} (cached config)`);
}

async function runChecks(
  cached: CachedAttachment[],
  views: AttachmentView[],
  s: Settings,
  json: boolean,
  stream: ProgressStream | undefined,
): Promise<void> {
  const lists = new Map<string, NetworkConfigList>();
  for (const net of new Set(cached.map((c) => c.entry.networkName)))
    await loadNetwork(s.confDir, net).then(
      (l) => lists.set(net, l),
      () => undefined,
    );
  const progress = createProgress({
    label: "check",
    total: cached.length,
    json,
    ...(stream ? { stream } : {}),
  });
  for (const [i, c] of cached.entries()) {
    const e = c.entry;
    const item = `${e.networkName}/${e.containerId.slice(0, 12)}/${e.ifName}`;
    progress.begin(item);
    let error: string | undefined;
    try {
      await checkNetworkList(
        configOf(c, lists),
        {
          containerId: e.containerId,
          netns: e.netns ?? "",
          ifname: e.ifName,
          args: e.cniArgs ?? [],
          capabilityArgs: e.capabilityArgs ?? {},
          cacheDir: s.cacheDir,
        },
        { cniPath: s.cniPath, env: s.pluginEnv },
      );
    } catch (err) {
      error = CniError.from(err).message;
    }
    views[i]!.health = error ?? "ok";
    progress.end(item, error);
  }
  progress.finish();
}

function cells(v: AttachmentView, paint: Paint, check: boolean): string[] {
  const comp = COMPONENTS.map(
    (c) => (v.components[c] ?? []).map((b) => SHORT_BACKEND[b] ?? b).join("+") || "-",
  );
  const state = v.problem
    ? paint(`${v.state}: ${v.problem}`, "red")
    : paint(v.state, v.state === "up" ? "green" : "yellow");
  const row = [
    v.network,
    v.containerId.length > 12 ? v.containerId.slice(0, 12) : v.containerId,
    v.ifname,
    v.netns.split("/").pop() ?? "",
    (v.liveAddresses.length ? v.liveAddresses : v.addresses).join(",") || "-",
    v.mac || "-",
    v.ports.join(",") || "-",
    ...comp,
  ];
  if (check) row.push(v.health === "ok" ? paint("ok", "green") : paint(v.health ?? "-", "red"));
  row.push(state);
  return row;
}

export async function list(argv: string[], io: ListIo): Promise<number> {
  return runHostView("list", argv, io, async (json) => {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { ...VIEW_OPTIONS, check: { type: "boolean" } },
    });
    if (values.help) {
      io.out(LIST_HELP + "\n");
      return 0;
    }
    const s = settingsFrom(values, io.env);
    const wanted = new Set(positionals);
    const cached = (await readCache(s.cacheDir)).filter(
      (c) => !wanted.size || wanted.has(c.entry.networkName),
    );
    for (const net of wanted)
      if (!cached.some((c) => c.entry.networkName === net))
        await loadNetwork(s.confDir, net).catch(() => {
          throw new CniError(
            ErrorCode.InvalidNetworkConfig,
            `no attachment and no network config named "${net}" (in ${s.cacheDir}/results and ${s.confDir}); run 'cni-nft list' without NETWORK to see the networks that have attachments`,
          );
        });
    const snap = await readHost();
    const views = await Promise.all(cached.map(async (c) => (await viewOf(c, snap)).view));
    if (values.check) await runChecks(cached, views, s, json, io.stderr);
    for (const u of snap.unreadable) io.err(`cni-nft list: warning: ${u}\n`);
    if (json) {
      io.out(JSON.stringify(views, null, 2) + "\n");
      return 0;
    }
    if (!views.length) {
      io.out(
        `no attachments in ${s.cacheDir}/results (runtimes cache one per ADD; 'cni-nft add NETWORK NETNS' makes one)\n`,
      );
      return 0;
    }
    const paint = viewPainter(values["no-color"], io);
    const header = [
      "NETWORK",
      "CONTAINER",
      "IF",
      "NETNS",
      "ADDRESSES",
      "MAC",
      "PORTS",
      "MASQ",
      "PORTMAP",
      "FIREWALL",
      "SPOOFCHK",
    ];
    if (values.check) header.push("HEALTH");
    header.push("STATE");
    io.out(
      renderTable(
        header,
        views.map((v) => cells(v, paint, values.check === true)),
        paint,
      ),
    );
    return 0;
  });
}
