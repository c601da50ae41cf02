/**
 * `cni-nft doctor`: what on this host will break containers, each finding with what to do.
 * Read only: it lists tables and rules, reads sysctls, the libcni cache and the network configs,
 * and changes nothing. hostForward's leftovers in the host firewall's chains: host_forward.ts.
 */
import { readFile } from "node:fs/promises";
import { systemRunner } from "../process/index.js";
import { onPath, systemIptables } from "../iptables/iptables.js";
import { frameworkPresent, frameworkProblems, type Framework } from "../framework/index.js";
import type { NetworkConfigList } from "../cli/libcni.js";
import { iptablesChainName, nftNetworkHash, nftOwnerHash } from "../cni/attachment.js";
import type { CachedAttachment } from "../migrate/components.js";
import { networkConfigs } from "./configs.js";
import { staleHostForward } from "./host_forward.js";

export type FindingKind =
  | "forward-policy-drop"
  | "iptables-legacy"
  | "kernel-features"
  | "ip-forward-off"
  | "leftover"
  | "host-forward-leftover"
  | "backend-unavailable";

export interface Finding {
  kind: FindingKind;
  /** What is wrong, naming the object. */
  message: string;
  /** What to do about it. */
  fix: string;
}

const OUR_TABLES = new Set([
  "cni_nft_firewall",
  "cni_nft_portmap",
  "cni_nft_masquerade",
  "cni_plugins_masquerade",
  "cni_hostport",
]);

async function nftJson(args: string[]): Promise<Array<Record<string, unknown>>> {
  const r = await systemRunner.run({ argv: ["nft", "-j", ...args] });
  if (r.code !== 0) return [];
  const items = (JSON.parse(r.stdout) as { nftables?: Array<Record<string, unknown>> }).nftables ?? [];
  return items;
}

/** An accept of the firewall's mark, as hostForward writes it (or an operator by hand). */
const MARK_ACCEPT_NFT = /meta mark & (0x[0-9a-f]+) == \1 accept/;
const MARK_ACCEPT_IPT = /^-A (FORWARD|CNI-FORWARD) -m mark --mark (0x[0-9a-f]+)\/\2 .*-j ACCEPT$/m;

/**
 * Base chains at the forward hook with policy drop, in tables that are not cni-nft's, and
 * iptables FORWARD DROP, unless the firewall's mark is accepted there already.
 */
async function forwardDrops(out: Finding[]): Promise<void> {
  if (onPath("nft"))
    for (const item of await nftJson(["list", "chains"])) {
      const c = item["chain"] as Record<string, unknown> | undefined;
      if (!c || c["hook"] !== "forward" || c["policy"] !== "drop") continue;
      if (OUR_TABLES.has(String(c["table"]))) continue;
      const where = `${String(c["family"])} ${String(c["table"])} ${String(c["name"])}`;
      // iptables-nft's own FORWARD chain is reported below, with the iptables fix.
      if (
        c["table"] === "filter" &&
        c["name"] === "FORWARD" &&
        (c["family"] === "ip" || c["family"] === "ip6")
      )
        continue;
      // Handled already: hostForward's accept (or one by hand) of the firewall's mark is there.
      const listed = await systemRunner.run({ argv: ["nft", "list", "chain", ...where.split(" ")] });
      if (MARK_ACCEPT_NFT.test(listed.stdout)) continue;
      out.push({
        kind: "forward-policy-drop",
        message: `nftables chain ${where} drops forwarded packets it does not accept (policy drop): an accept in cni-nft's table does not override it`,
        fix: `set the firewall plugin's hostForward (any netfilter backend): "hostForward": {"nftables": {"family": "${String(c["family"])}", "table": "${String(c["table"])}", "chain": "${String(c["name"])}"}}; or, by hand for the nftables backend, nft insert rule ${where} meta mark and 0x00001000 == 0x00001000 accept (docs/firewall.md, "hostForward")`,
      });
    }
  for (const family of [4, 6] as const) {
    if (!onPath(family === 4 ? "iptables-save" : "ip6tables-save")) continue;
    const r = await systemRunner.run({
      argv: [family === 4 ? "iptables-save" : "ip6tables-save", "-t", "filter"],
    });
    if (r.code === 0 && /^:FORWARD DROP /m.test(r.stdout) && !MARK_ACCEPT_IPT.test(r.stdout))
      out.push({
        kind: "forward-policy-drop",
        message: `${family === 4 ? "iptables" : "ip6tables"} FORWARD policy is DROP (as Docker sets it): containers on the nftables firewall backend are dropped there`,
        fix: 'use the firewall plugin\'s iptables backend (its rules sit in FORWARD), or with the nftables backend set its hostForward: "hostForward": {"iptables": true} (docs/firewall.md, "hostForward")',
      });
  }
}

async function legacyRules(out: Finding[]): Promise<void> {
  if (!onPath("iptables-legacy-save") || !onPath("nft")) return;
  const r = await systemRunner.run({ argv: ["iptables-legacy-save"] });
  const rules = r.stdout.split("\n").filter((l) => l.startsWith("-A "));
  if (rules.length)
    out.push({
      kind: "iptables-legacy",
      message: `${rules.length} iptables-legacy rules run beside nftables (a separate kernel path that nft does not show), e.g. ${rules[0]}`,
      fix: "move them to iptables-nft or nftables (iptables-legacy-save | iptables-nft-restore, then iptables-legacy -F / -X per table)",
    });
}

async function ipForward(out: Finding[]): Promise<void> {
  const v = (await readFile("/proc/sys/net/ipv4/ip_forward", "utf8").catch(() => "1")).trim();
  if (v !== "1")
    out.push({
      kind: "ip-forward-off",
      message: "net.ipv4.ip_forward is 0: the host does not route container traffic",
      fix: "sysctl -w net.ipv4.ip_forward=1 (and set it in /etc/sysctl.d/); bridge and ptp turn it on at ADD",
    });
}

/** Backends named by the configs in NETCONFPATH. */
function configuredBackends(
  lists: readonly NetworkConfigList[],
): Array<{ list: NetworkConfigList; backend: Framework }> {
  const out: Array<{ list: NetworkConfigList; backend: Framework }> = [];
  for (const list of lists)
    for (const p of list.plugins) {
      const b = p["ipMasqBackend"] ?? p["backend"];
      if (b === "iptables" || b === "nftables") out.push({ list, backend: b });
    }
  return out;
}

async function backends(
  out: Finding[],
  lists: readonly NetworkConfigList[],
  cached: readonly CachedAttachment[],
): Promise<void> {
  const named = configuredBackends(lists);
  for (const { list, backend } of named)
    if (!frameworkPresent(backend))
      out.push({
        kind: "backend-unavailable",
        message: `network ${list.name} (${list.file}) names backend ${backend}, which this host cannot run`,
        fix: `install ${backend}, or remove the backend field so the host's default applies`,
      });
  const used = new Set<Framework>(named.map((n) => n.backend));
  if (cached.length || used.size === 0)
    for (const f of ["iptables", "nftables"] as const) if (frameworkPresent(f)) used.add(f);
  for (const f of used) {
    if (!frameworkPresent(f)) continue;
    for (const p of await frameworkProblems(f))
      out.push({
        kind: "kernel-features",
        message: `${f}: ${p}`,
        fix: "see the message; STATUS reports the same",
      });
  }
}

/** nftables elements and rules, and iptables chains, that no cached attachment owns. */
async function leftovers(out: Finding[], cached: readonly CachedAttachment[]): Promise<void> {
  const owners = new Set(cached.map((a) => nftOwnerHash(a)));
  const ids = new Set(cached.map((a) => a.containerId));
  const chains = new Set(cached.map((a) => iptablesChainName(a)));
  const dnChains = new Set(cached.map((a) => iptablesChainName(a, "DN-")));
  const nets = new Set(cached.map((a) => nftNetworkHash(a.network)));
  const stale: string[] = [];
  if (onPath("nft")) {
    for (const t of ["cni_nft_portmap", "cni_nft_firewall", "cni_nft_masquerade", "cni_plugins_masquerade"])
      for (const item of await nftJson(["list", "table", "inet", t])) {
        const rule = item["rule"] as Record<string, unknown> | undefined;
        const set = (item["set"] ?? item["map"]) as Record<string, unknown> | undefined;
        const comments: string[] = [];
        if (typeof rule?.["comment"] === "string") comments.push(rule["comment"]);
        for (const e of (set?.["elem"] as unknown[] | undefined) ?? []) {
          const c = (e as { elem?: { comment?: unknown } }).elem?.comment;
          if (typeof c === "string") comments.push(c);
        }
        for (const c of comments) {
          const owner = c.split(",")[0]!;
          if (/^[0-9a-f]{16}-[0-9a-f]{16}$/.test(owner) && !owners.has(owner))
            stale.push(
              `inet ${t}: "${c}"${nets.has(owner.slice(0, 16)) ? "" : " (a network with nothing cached)"}`,
            );
        }
      }
    for (const fam of ["ip", "ip6"])
      for (const item of await nftJson(["list", "table", fam, "cni_hostport"])) {
        const c = (item["rule"] as Record<string, unknown> | undefined)?.["comment"];
        if (typeof c === "string" && !ids.has(c)) stale.push(`${fam} cni_hostport: rule of container ${c}`);
      }
  }
  for (const family of [4, 6] as const) {
    if (!onPath(family === 4 ? "iptables-save" : "ip6tables-save")) continue;
    const saved = await systemIptables.save(family, "nat").catch(() => undefined);
    for (const c of saved?.chains ?? []) {
      if (/^CNI-[0-9a-f]{24}$/.test(c) && !chains.has(c))
        stale.push(`${family === 4 ? "iptables" : "ip6tables"} nat chain ${c} (masquerade)`);
      if (/^CNI-DN-[0-9a-f]{21}$/.test(c) && !dnChains.has(c))
        stale.push(`${family === 4 ? "iptables" : "ip6tables"} nat chain ${c} (port mappings)`);
    }
  }
  for (const s of stale)
    out.push({
      kind: "leftover",
      message: `${s} belongs to no cached attachment`,
      fix: "cni-nft gc NETWORK removes what belongs to a network's stale attachments (a runtime's GC does the same); check the runtime's cache first if containers are running",
    });
}

export async function diagnose(opts: {
  confDir: string;
  cached: readonly CachedAttachment[];
}): Promise<Finding[]> {
  const out: Finding[] = [];
  const lists = await networkConfigs(opts.confDir);
  await forwardDrops(out);
  await legacyRules(out);
  await ipForward(out);
  await backends(out, lists, opts.cached);
  await leftovers(out, opts.cached);
  await staleHostForward(out, lists);
  return out;
}
