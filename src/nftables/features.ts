/**
 * What the nft binary and kernel can do, probed once per process (per nft binary and netns) and
 * only when an operation needs to know, so the hot path of a plugin pays for no probe.
 */
import { execNft, type ExecOptions } from "./exec.js";
import type { Features } from "./types.js";

const cache = new Map<string, Promise<Features>>();

function key(opts: ExecOptions): string {
  return `${opts.nftPath ?? "nft"}\0${opts.netns ?? ""}`;
}

export function probeFeatures(opts: ExecOptions): Promise<Features> {
  const k = key(opts);
  let p = cache.get(k);
  if (!p) {
    p = doProbe(opts);
    cache.set(k, p);
    p.catch(() => cache.delete(k));
  }
  return p;
}

/** Forgets probed features (tests that swap nft binaries). */
export function resetFeatureCache(): void {
  cache.clear();
}

async function doProbe(opts: ExecOptions): Promise<Features> {
  // One nft run per question, all in parallel; --check never changes the ruleset.
  const probeTable = `cni_nft_probe_${process.pid}`;
  const [version, destroy, json, comments] = await Promise.all([
    execNft(["--version"], opts),
    execNft(["--check", "-f", "-"], opts, `destroy table inet ${probeTable}\n`),
    execNft(["--json", "list", "tables", "inet"], opts),
    execNft(["--check", "-f", "-"], opts, `add table inet ${probeTable} { comment "probe" ; }\n`),
  ]);
  const m = /v(\d+\.\d+(?:\.\d+)?)/.exec(version.stdout);
  return {
    version: m?.[1] ?? "unknown",
    destroy: destroy.code === 0,
    json: json.code === 0 && json.stdout.trimStart().startsWith("{"),
    objectComments: comments.code === 0,
  };
}

/** Compares dotted versions: negative if a < b. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
