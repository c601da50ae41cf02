/**
 * Installing plugin executables and a conflist the way a runtime can never see half of it: every
 * file is written beside its target and renamed over it (rename is atomic within a directory), the
 * multi-call binary before the fronts that exec it. A file in the bin directory that cni-nft did
 * not install (absent from the manifest, or changed since) is never replaced unless forced: the
 * whole plan is checked before the first write, so a refusal changes nothing.
 *
 * The manifest, `<binDir>/.cni-nft-install.json`, records the sha256 of every file installed
 * (plugins and conflists, by absolute path).
 */
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { CniError, ErrorCode } from "../cni/errors.js";

export const MANIFEST = ".cni-nft-install.json";
/** Written first: the fronts exec them (the client when a resident daemon's socket exists). */
const MULTICALL = "cni-nft-plugins";
const CLIENT = "cni-nft-client";

export interface Manifest {
  version: 1;
  /** Absolute path → "sha256:<hex>" of the file as installed, or "link:<target>" for a symlink. */
  files: Record<string, string>;
}

/** One file to place: regular file (data, mode) or symlink (target). */
export interface InstallFile {
  path: string;
  data?: Buffer;
  mode?: number;
  linkTarget?: string;
}

export type Action = "install" | "update" | "unchanged" | "replace-foreign";

export interface PlannedFile extends InstallFile {
  action: Action;
}

function digest(f: { data?: Buffer; linkTarget?: string }): string {
  if (f.linkTarget !== undefined) return `link:${f.linkTarget}`;
  return `sha256:${createHash("sha256")
    .update(f.data ?? Buffer.alloc(0))
    .digest("hex")}`;
}

/** What is at `path` now, in manifest form; undefined when nothing is there. */
function currentDigest(path: string): string | undefined {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return undefined;
  }
  if (st.isSymbolicLink()) return `link:${readlinkSync(path)}`;
  if (!st.isFile()) return `other:${st.mode}`;
  return digest({ data: readFileSync(path) });
}

export function readManifest(binDir: string): Manifest {
  const p = join(binDir, MANIFEST);
  if (!existsSync(p)) return { version: 1, files: {} };
  try {
    const m = JSON.parse(readFileSync(p, "utf8")) as Manifest;
    if (m.version === 1 && m.files && typeof m.files === "object") return m;
  } catch {
    /* an unreadable manifest is treated as none: nothing counts as ours */
  }
  return { version: 1, files: {} };
}

/** The plugin directory's files (flat: regular files and symlinks), the compiled binaries first. */
export function sourceFiles(sourceDir: string, binDir: string): InstallFile[] {
  if (!existsSync(join(sourceDir, MULTICALL)))
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `${sourceDir} holds no ${MULTICALL}: point --source at the release directory or dist/compiled`,
    );
  const out: InstallFile[] = [];
  for (const name of readdirSync(sourceDir).sort()) {
    if (name.startsWith(".")) continue;
    const p = join(sourceDir, name);
    const st = lstatSync(p);
    const path = resolve(binDir, name);
    if (st.isSymbolicLink()) out.push({ path, linkTarget: readlinkSync(p) });
    else if (st.isFile()) out.push({ path, data: readFileSync(p), mode: st.mode & 0o111 ? 0o755 : 0o644 });
  }
  const rank = (f: InstallFile): number =>
    f.path.endsWith(`/${MULTICALL}`) || f.path.endsWith(`/${CLIENT}`)
      ? 0
      : f.linkTarget !== undefined
        ? 1
        : 2;
  return out.sort((a, b) => rank(a) - rank(b));
}

/**
 * Decides what happens to each file; throws (changing nothing) when a file cni-nft did not
 * install would be replaced and `force` is not set.
 */
export function plan(files: InstallFile[], manifest: Manifest, force: boolean): PlannedFile[] {
  const foreign: string[] = [];
  const planned = files.map((f): PlannedFile => {
    const now = currentDigest(f.path);
    const want = digest(f);
    if (now === undefined) return { ...f, action: "install" };
    if (now === want) return { ...f, action: "unchanged" };
    if (manifest.files[f.path] === now) return { ...f, action: "update" };
    foreign.push(f.path);
    return { ...f, action: "replace-foreign" };
  });
  if (foreign.length && !force)
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `refusing to replace files cni-nft did not install (or that changed since): ${foreign.join(", ")}; ` +
        `nothing was changed (--force replaces them)`,
    );
  return planned;
}

function placeAtomically(f: InstallFile): void {
  const tmp = `${f.path}.cni-nft-${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  try {
    if (f.linkTarget !== undefined) symlinkSync(f.linkTarget, tmp);
    else {
      writeFileSync(tmp, f.data ?? Buffer.alloc(0), { mode: f.mode ?? 0o644, flush: true });
      chmodSync(tmp, f.mode ?? 0o644); // the umask must not strip the execute bits
    }
    renameSync(tmp, f.path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new CniError(ErrorCode.IOFailure, `installing ${f.path}: ${(e as Error).message}`);
  }
}

/** Applies a plan and records every file now ours in the manifest of `binDir`. */
export function apply(planned: PlannedFile[], binDir: string, manifest: Manifest): void {
  for (const f of planned) {
    if (f.action === "unchanged") continue;
    mkdirSync(resolve(f.path, ".."), { recursive: true });
    placeAtomically(f);
  }
  const files = { ...manifest.files };
  for (const f of planned) files[f.path] = digest(f);
  mkdirSync(binDir, { recursive: true });
  placeAtomically({
    path: join(binDir, MANIFEST),
    data: Buffer.from(JSON.stringify({ version: 1, files }, null, 2) + "\n"),
    mode: 0o644,
  });
}
