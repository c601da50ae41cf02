/**
 * Whether the kernel holds an iptables table at all, told without running iptables-save: DEL
 * removes an attachment from every backend present, and on a host whose iptables holds nothing
 * the saves of the iptables backends (one per family and table) were processes for nothing.
 *
 * iptables-legacy lists its tables in /proc/net/ip_tables_names (ip6_tables_names): a file
 * read. iptables-nft keeps them as nftables tables `ip nat`, `ip6 filter`, ...: each is asked for
 * by name, with `nft --terse list sets table <family> <name>` (ENOENT when the table is missing;
 * in-process when the nftables library runs libnftables, one `nft` run otherwise), remembered per
 * family and table, forgotten as soon as this process changes iptables and after
 * {@link LISTING_TTL_MS} (for long-lived callers like the CLI: other processes add tables too).
 * Not `nft list tables`: nft 1.0.6 fetches every element of every set of every table before it
 * lists even the names (0.9 s with 5,000 portmap containers); a terse listing of one table's sets
 * fetches neither elements nor rules (0.03 ms in-process, with or without 10,000 elements
 * elsewhere or 5,000 rules in that table). Not a checked `create table` either (what this did
 * before): a batch that fails, or one only checked, makes the kernel abort it, and an abort
 * waits for an RCU grace period (12 ms for both families here, 44 ms when a table exists and
 * each family is asked again). Anything unclear (another variant, no nft, an error) answers "may
 * hold", so iptables-save runs as before.
 */
import { readFileSync, realpathSync } from "node:fs";
import { isNotFound, NFTables } from "../nftables/index.js";
import type { Runner } from "../process/runner.js";
import { ambientEnv } from "../cni/ambient.js";

export type IptablesVariant = "nft" | "legacy" | "unknown";

export interface KernelTables {
  /** False only when the kernel surely has no such table for that family. */
  mayHold(family: 4 | 6, table: string): Promise<boolean>;
  /** This process changed iptables: tables may exist now that did not. */
  changed(): void;
}

/** The variant behind `iptables-save` on PATH (xtables-nft-multi, xtables-legacy-multi, ...). */
export function iptablesVariant(
  path = ambientEnv()["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin",
): IptablesVariant {
  for (const dir of path.split(":")) {
    let real: string;
    try {
      real = realpathSync(`${dir}/iptables-save`);
    } catch {
      continue;
    }
    if (/nft/.test(real)) return "nft";
    if (/legacy/.test(real)) return "legacy";
    return "unknown";
  }
  return "unknown";
}

/** Names in /proc/net/ip_tables_names or ip6_tables_names; none when the file is absent. */
export function legacyTables(family: 4 | 6, read = (p: string) => readFileSync(p, "utf8")): string[] {
  try {
    return read(`/proc/net/${family === 4 ? "ip" : "ip6"}_tables_names`)
      .split("\n")
      .filter(Boolean);
  } catch {
    return [];
  }
}

/** How long one answer holds: longer than a plugin call, short for a long-lived caller. */
export const LISTING_TTL_MS = 1000;

export interface KernelTablesOptions {
  /** Starts nft for the checks; default: the system's runner. */
  runner?: Runner;
  /** The variant; default: found from iptables-save on PATH. */
  variant?: IptablesVariant;
  /** Reads a /proc file (legacy tables); default: the file system. */
  read?: (path: string) => string;
}

/** The host's tables, through the nftables library on `runner`. */
export class SystemKernelTables implements KernelTables {
  private variant: IptablesVariant | undefined;
  private readonly known = new Map<string, { at: number; holds: Promise<boolean> }>();

  constructor(private readonly opts: KernelTablesOptions = {}) {
    this.variant = opts.variant;
  }

  async mayHold(family: 4 | 6, table: string): Promise<boolean> {
    this.variant ??= iptablesVariant();
    if (this.variant === "legacy") return legacyTables(family, this.opts.read).includes(table);
    if (this.variant !== "nft") return true;
    const memo = this.known.get(`${family} ${table}`);
    if (memo && Date.now() - memo.at <= LISTING_TTL_MS) return memo.holds;
    const holds = this.exists(family, table);
    this.known.set(`${family} ${table}`, { at: Date.now(), holds });
    return holds;
  }

  /** False only when nft says the table is missing. */
  private async exists(family: 4 | 6, table: string): Promise<boolean> {
    const runner = this.opts.runner ? { runner: this.opts.runner } : {};
    try {
      await new NFTables({ family: family === 4 ? "ip" : "ip6", table, ...runner }).list("sets");
      return true;
    } catch (e) {
      // Missing; anything else (a name nft refuses too) must not hide a table.
      return !isNotFound(e);
    }
  }

  changed(): void {
    this.known.clear();
  }
}
