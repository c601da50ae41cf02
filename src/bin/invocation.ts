/**
 * What the multi-call binary was started as: the operator CLI (`cni-nft`) or a plugin, chosen by
 * the name it was started as (busybox style) or by CNI_NFT_PLUGIN (the sh fronts and Node shims
 * name the plugin there). Shared by the compiled entry (src/bin/compiled.ts), which must decide
 * before any plugin code is loaded, and the full dispatch (src/bin/multicall.ts); imports nothing
 * of the plugins.
 */
import { basename } from "node:path";
import { PLANNED_NAMES, PLUGIN_NAMES } from "./names.js";

/**
 * What the C client (src/resident/thin/call.c) decided before it exec'd this binary: `here`, run
 * the plugin in-process without trying the daemon again; `lost`, the daemon accepted the call and
 * ended before answering, so only say so (src/resident/call.ts).
 */
export type Handoff = "here" | "lost";

export type Invocation = { cli: true } | { cli: false; plugin: string; handoff?: Handoff };

/**
 * Reads the invocation once. CNI_NFT_PLUGIN and CNI_NFT_RESIDENT_HANDOFF are dropped from the
 * environment, so they never leak into plugins this one executes (IPAM delegation) nor into a call
 * handed to the resident daemon.
 */
export function invocation(): Invocation {
  // Under Node argv[1] is the script; a compiled Bun binary sees the link it was started as in argv0.
  const names = [basename(process.argv0), basename(process.argv[1] ?? "")];
  if (names.includes("cni-nft")) return { cli: true };
  const known = (n: string): boolean =>
    (PLUGIN_NAMES as readonly string[]).includes(n) || PLANNED_NAMES.includes(n);
  const plugin = names.find(known) ?? process.env["CNI_NFT_PLUGIN"] ?? "";
  const handoff = process.env["CNI_NFT_RESIDENT_HANDOFF"];
  delete process.env["CNI_NFT_PLUGIN"];
  delete process.env["CNI_NFT_RESIDENT_HANDOFF"];
  return handoff === "here" || handoff === "lost" ? { cli: false, plugin, handoff } : { cli: false, plugin };
}

/** How both entries end a dispatch that threw. */
export function failed(e: unknown): void {
  process.stderr.write(`cni-nft: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
}
