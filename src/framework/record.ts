/**
 * The framework a network's host state lives on, recorded by `cni-nft migrate` so that a
 * container added later through the same, unchanged config lands where the others are. One small
 * JSON file per network name: `$CNI_NFT_NETWORKS_DIR/<network>.json` (default
 * `/var/lib/cni-nft/networks`, on disk so it outlives a reboot). A config that names a backend
 * still wins; a missing or unreadable record means "no record" (the host's default applies).
 */
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Framework } from "./choose.js";
import { ambientEnv } from "../cni/ambient.js";

export const DEFAULT_NETWORKS_DIR = "/var/lib/cni-nft/networks";

export function networksDir(env: Readonly<Record<string, string | undefined>> = ambientEnv()): string {
  return env["CNI_NFT_NETWORKS_DIR"] || DEFAULT_NETWORKS_DIR;
}

export interface NetworkRecord {
  backend: Framework;
  /** When it was recorded (ISO 8601), for operators. */
  since: string;
}

/** libcni's network names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`) are file names; anything else has no record. */
function recordFile(network: string, dir: string): string | undefined {
  return /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(network) ? join(dir, `${network}.json`) : undefined;
}

export function readNetworkRecord(network: string, dir = networksDir()): NetworkRecord | undefined {
  const file = recordFile(network, dir);
  if (!file) return undefined;
  try {
    const r = JSON.parse(readFileSync(file, "utf8")) as Partial<NetworkRecord>;
    if (r.backend !== "iptables" && r.backend !== "nftables") return undefined;
    return { backend: r.backend, since: typeof r.since === "string" ? r.since : "" };
  } catch {
    return undefined;
  }
}

/** Written atomically (rename), so a plugin never reads half a record. */
export function writeNetworkRecord(network: string, backend: Framework, dir = networksDir()): void {
  const file = recordFile(network, dir);
  if (!file) throw new Error(`network name ${JSON.stringify(network)} cannot be recorded`);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify({ backend, since: new Date().toISOString() }) + "\n");
  renameSync(tmp, file);
}

export function removeNetworkRecord(network: string, dir = networksDir()): void {
  const file = recordFile(network, dir);
  if (!file) return;
  try {
    unlinkSync(file);
  } catch {
    // already gone
  }
}
