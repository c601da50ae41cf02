/**
 * What the nft binary and kernel can do, probed only when an operation needs to know, once per
 * process, and remembered on disk (tmpfs) for the processes after it: a CNI plugin is a new
 * process on every call, and a probe costs four nft runs. The disk entry is keyed by the nft
 * binary (path, size, mtime) and the kernel release, so an upgrade of either probes again.
 */
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { systemRunner, type Runner } from "../process/runner.js";
import { execNft, type ExecOptions, type NftExec } from "./exec.js";
import type { Features } from "./types.js";
import { ambientEnv } from "../cni/ambient.js";

/** Where probed features are remembered; CNI_NFT_STATE_DIR overrides, "" turns it off. */
function stateDir(): string {
  return ambientEnv()["CNI_NFT_STATE_DIR"] ?? "/run/cni-nft";
}

function nftIdentity(opts: ExecOptions): string | undefined {
  const nft = opts.nftPath ?? "nft";
  const candidates = nft.includes("/")
    ? [nft]
    : (ambientEnv()["PATH"] ?? "/usr/sbin:/usr/bin").split(":").map((d) => `${d}/${nft}`);
  for (const path of candidates) {
    try {
      const st = statSync(path);
      return `${path}:${st.size}:${st.mtimeMs}:${process.getBuiltinModule("node:os").release()}`;
    } catch {
      // next
    }
  }
  return undefined;
}

function readRemembered(id: string): Features | undefined {
  if (!stateDir()) return undefined;
  try {
    const saved = JSON.parse(readFileSync(`${stateDir()}/nft-features.json`, "utf8")) as {
      id?: string;
      features?: Features;
    };
    return saved.id === id ? saved.features : undefined;
  } catch {
    return undefined;
  }
}

function remember(id: string, features: Features): void {
  if (!stateDir()) return;
  try {
    mkdirSync(stateDir(), { recursive: true, mode: 0o755 });
    const tmp = `${stateDir()}/.nft-features.${process.pid}`;
    writeFileSync(tmp, JSON.stringify({ id, features }));
    renameSync(tmp, `${stateDir()}/nft-features.json`);
  } catch {
    // Only an optimisation: a read-only /run just means probing again next time.
  }
}

const cache = new Map<string, Promise<Features>>();
/** An injected runner (a fake) or exec has features of its own, never shared with the host's nft. */
const injectedIds = new WeakMap<Runner | NftExec, number>();
let injectedSeen = 0;

function idOf(x: Runner | NftExec | undefined): string {
  if (!x || x === systemRunner) return "";
  if (!injectedIds.has(x)) injectedIds.set(x, ++injectedSeen);
  return String(injectedIds.get(x));
}

function key(opts: ExecOptions): string {
  return `${opts.nftPath ?? "nft"}\0${opts.netns ?? ""}\0${idOf(opts.runner)}\0${idOf(opts.exec)}`;
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
  const injected = (opts.runner !== undefined && opts.runner !== systemRunner) || opts.exec !== undefined;
  const id = injected ? undefined : nftIdentity(opts);
  const known = id !== undefined ? readRemembered(id) : undefined;
  if (known) return known;
  const features = await probeNow(opts);
  if (id !== undefined) remember(id, features);
  return features;
}

async function probeNow(opts: ExecOptions): Promise<Features> {
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
