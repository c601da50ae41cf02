/**
 * The attachments of a host as an operator sees them: every entry of libcni's result cache
 * (ours, podman's, cnitool's: the same cniCacheV1 files), joined with what is live: the
 * interface in the container namespace (addresses, MAC) and the host state each component
 * holds (hostview.ts). An attachment whose namespace or interface went away behind cni-nft's
 * back says so in `state`.
 */
import { existsSync } from "node:fs";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { Attachment } from "../cni/attachment.js";
import { systemRunner, type Runner } from "../process/index.js";
import type { CacheEntry } from "./libcni.js";
import { backendsOf, holdingsOf, type Component, type HostSnapshot, type Holding } from "./hostview.js";

export interface CachedAttachment {
  file: string;
  entry: CacheEntry;
}

/** Every readable cniCacheV1 entry under `<cacheDir>/results`, sorted by network then container. */
export async function readCache(cacheDir: string): Promise<CachedAttachment[]> {
  const dir = join(cacheDir, "results");
  let files: string[];
  try {
    files = await readdir(dir);
  } catch {
    return [];
  }
  const out: CachedAttachment[] = [];
  for (const f of files) {
    if (f.endsWith(".tmp")) continue;
    try {
      const entry = JSON.parse(await readFile(join(dir, f), "utf8")) as CacheEntry;
      if (entry.kind === "cniCacheV1" && entry.networkName && entry.containerId)
        out.push({ file: join(dir, f), entry });
    } catch {
      /* another runtime's file, or torn: not an attachment we can show */
    }
  }
  return out.sort(
    (a, b) =>
      a.entry.networkName.localeCompare(b.entry.networkName) ||
      a.entry.containerId.localeCompare(b.entry.containerId) ||
      a.entry.ifName.localeCompare(b.entry.ifName),
  );
}

export type LiveState = "up" | "down" | "netns-gone" | "interface-gone" | "unknown";

export interface AttachmentView {
  network: string;
  containerId: string;
  ifname: string;
  netns: string;
  /** Addresses from the cached result (CIDR). */
  addresses: string[];
  /** Addresses on the interface now (CIDR); empty when it is gone. */
  liveAddresses: string[];
  mac: string;
  /** `8080/tcp->80` per mapping from the cached capability args. */
  ports: string[];
  components: Partial<Record<Component, string[]>>;
  state: LiveState;
  /** What is wrong, in words, when the attachment is not whole. */
  problem?: string;
  /** With --check: "ok" or the plugin's error. */
  health?: string;
  cacheFile: string;
}

interface CachedResult {
  interfaces?: { name?: string; mac?: string; sandbox?: string }[];
  ips?: { address?: string; interface?: number }[];
}

function portsOf(entry: CacheEntry): string[] {
  const pm = entry.capabilityArgs?.portMappings;
  if (!Array.isArray(pm)) return [];
  return pm.flatMap((m: unknown) => {
    if (typeof m !== "object" || m === null) return [];
    const { hostPort, containerPort, protocol, hostIP } = m as Record<string, unknown>;
    const host = typeof hostIP === "string" && hostIP ? `${hostIP}:${String(hostPort)}` : String(hostPort);
    return [
      `${host}/${typeof protocol === "string" && protocol ? protocol : "tcp"}->${String(containerPort)}`,
    ];
  });
}

interface LiveLink {
  state: LiveState;
  addresses: string[];
  mac: string;
}

/** The interface as it is now in the container namespace (`ip -j addr`, one process). */
export async function liveLink(
  netns: string,
  ifname: string,
  runner: Runner = systemRunner,
): Promise<LiveLink> {
  if (!netns || !existsSync(netns)) return { state: "netns-gone", addresses: [], mac: "" };
  const r = await runner
    .run({ argv: ["ip", "-j", "addr", "show", "dev", ifname], netns })
    .catch(() => undefined);
  if (!r) return { state: "unknown", addresses: [], mac: "" };
  if (r.code !== 0)
    return {
      state: /cannot open|Invalid argument/i.test(r.stderr) ? "netns-gone" : "interface-gone",
      addresses: [],
      mac: "",
    };
  try {
    const [link] = JSON.parse(r.stdout) as {
      operstate?: string;
      flags?: string[];
      address?: string;
      addr_info?: { family: string; local: string; prefixlen: number; scope: string }[];
    }[];
    if (!link) return { state: "interface-gone", addresses: [], mac: "" };
    return {
      state: link.flags?.includes("UP") ? "up" : "down",
      mac: link.address ?? "",
      addresses: (link.addr_info ?? [])
        .filter((a) => a.scope !== "link")
        .map((a) => `${a.local}/${a.prefixlen}`),
    };
  } catch {
    return { state: "unknown", addresses: [], mac: "" };
  }
}

export function attachmentOfEntry(e: CacheEntry): Attachment {
  return { network: e.networkName, containerId: e.containerId, ifname: e.ifName };
}

/** The cached addresses of the entry's interface (all of them when the result names none). */
export function cachedAddresses(e: CacheEntry): { addresses: string[]; mac: string } {
  const r = (e.result ?? {}) as CachedResult;
  const idx = (r.interfaces ?? []).findIndex((i) => i.name === e.ifName && i.sandbox);
  const ips = (r.ips ?? []).filter((ip) => idx < 0 || ip.interface === undefined || ip.interface === idx);
  return {
    addresses: ips.flatMap((ip) => (typeof ip.address === "string" ? [ip.address] : [])),
    mac: idx >= 0 ? (r.interfaces?.[idx]?.mac ?? "") : "",
  };
}

function problemOf(v: Omit<AttachmentView, "problem">): string | undefined {
  if (v.state === "netns-gone") return `network namespace ${v.netns || "(none)"} is gone`;
  if (v.state === "interface-gone") return `interface ${v.ifname} is gone from ${v.netns}`;
  const missing = v.addresses.filter((a) => !v.liveAddresses.includes(a));
  if (v.state !== "unknown" && missing.length)
    return `address ${missing.join(", ")} no longer on ${v.ifname}`;
  return undefined;
}

/** One attachment's view: cache entry, live link, host holdings. */
export async function viewOf(
  c: CachedAttachment,
  snap: HostSnapshot,
  runner: Runner = systemRunner,
): Promise<{ view: AttachmentView; holdings: Holding[] }> {
  const e = c.entry;
  const cached = cachedAddresses(e);
  const live = await liveLink(e.netns ?? "", e.ifName, runner);
  const holdings = holdingsOf(
    snap,
    attachmentOfEntry(e),
    cached.addresses.map((a) => a.split("/")[0]!),
  );
  const base = {
    network: e.networkName,
    containerId: e.containerId,
    ifname: e.ifName,
    netns: e.netns ?? "",
    addresses: cached.addresses,
    liveAddresses: live.addresses,
    mac: live.mac || cached.mac,
    ports: portsOf(e),
    components: backendsOf(holdings),
    state: live.state,
    cacheFile: c.file,
  };
  const problem = problemOf(base);
  return { view: problem ? { ...base, problem } : base, holdings };
}
