/**
 * npm run release: the release artifact, laid out like upstream's cni-plugins tarball (a flat
 * directory of plugin executables, here plus the multi-call binary and the `cni-nft` CLI):
 *
 *   dist/release/cni-nft-plugins-linux-<arch>-v<version>.tgz
 *   dist/release/cni-nft-plugins-linux-<arch>-v<version>.tgz.sha256   ("<hex>  <file name>", sha256sum -c)
 *
 * Reproducible: the same dist/compiled gives the same bytes (see scripts/release/tar.ts). mtime of
 * every entry: SOURCE_DATE_EPOCH, else the commit time of HEAD, else 0.
 * Options: --source DIR (default dist/compiled), --out DIR (default dist/release).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { flatDirEntries, gzip, tar } from "./release/tar.js";

/** Go's names for the architectures, as upstream's artifacts use them. */
const GOARCH: Record<string, string> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ppc64: "ppc64le",
  s390x: "s390x",
};

export interface ReleaseOptions {
  source: string;
  out: string;
  version: string;
  arch: string;
  mtime: number;
}

export interface ReleaseFiles {
  tarball: string;
  checksum: string;
  sha256: string;
}

export function releaseName(version: string, arch: string): string {
  return `cni-nft-plugins-linux-${arch}-v${version}.tgz`;
}

function writeAtomically(path: string, data: Buffer | string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

export function writeRelease(o: ReleaseOptions): ReleaseFiles {
  if (!existsSync(join(o.source, "cni-nft-plugins")))
    throw new Error(
      `release: ${o.source}/cni-nft-plugins missing (npm run build needs bun: npm ci installs it)`,
    );
  const tgz = gzip(tar(flatDirEntries(o.source), o.mtime));
  const name = releaseName(o.version, o.arch);
  const sha256 = createHash("sha256").update(tgz).digest("hex");
  mkdirSync(o.out, { recursive: true });
  const tarball = join(o.out, name);
  writeAtomically(tarball, tgz);
  writeAtomically(`${tarball}.sha256`, `${sha256}  ${name}\n`);
  return { tarball, checksum: `${tarball}.sha256`, sha256 };
}

function sourceDateEpoch(): number {
  const env = process.env["SOURCE_DATE_EPOCH"];
  if (env !== undefined && /^\d+$/.test(env)) return Number(env);
  try {
    return Number(execFileSync("git", ["log", "-1", "--format=%ct"], { encoding: "utf8" }).trim()) || 0;
  } catch {
    return 0;
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/.*\//, "/"))) {
  const { values } = parseArgs({ options: { source: { type: "string" }, out: { type: "string" } } });
  const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
  const arch = GOARCH[process.arch];
  if (!arch) throw new Error(`release: no Go architecture name for ${process.arch}`);
  const r = writeRelease({
    source: values.source ?? "dist/compiled",
    out: values.out ?? "dist/release",
    version: pkg.version,
    arch,
    mtime: sourceDateEpoch(),
  });
  process.stdout.write(`${r.tarball}\n${r.checksum}\n`);
}
