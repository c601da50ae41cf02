/**
 * A reproducible .tgz writer for release artifacts: the same inputs give the same bytes, because
 * entries are sorted, owner, mode and mtime are fixed (not taken from the build tree), and the
 * gzip header carries no timestamp or file name. ustar format, read by GNU tar, busybox tar and
 * every tar library; regular files and symlinks only (a release directory is flat).
 */
import { lstatSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

export interface TarEntry {
  /** Path inside the archive, e.g. "./bridge". */
  name: string;
  type: "file" | "dir" | "symlink";
  mode: number;
  data?: Buffer;
  linkTarget?: string;
}

const BLOCK = 512;

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

function header(e: TarEntry, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  const name = Buffer.from(e.name);
  if (name.length > 100) throw new Error(`tar: name longer than 100 bytes: ${e.name}`);
  if ((e.linkTarget ?? "").length > 100) throw new Error(`tar: link target too long: ${e.linkTarget}`);
  name.copy(h, 0);
  h.write(octal(e.mode & 0o7777, 8), 100, "ascii");
  h.write(octal(0, 8), 108, "ascii"); // uid
  h.write(octal(0, 8), 116, "ascii"); // gid
  h.write(octal(e.type === "file" ? (e.data?.length ?? 0) : 0, 12), 124, "ascii");
  h.write(octal(mtime, 12), 136, "ascii");
  h.write("        ", 148, "ascii"); // checksum placeholder: spaces while summing
  h.write(e.type === "file" ? "0" : e.type === "dir" ? "5" : "2", 156, "ascii");
  if (e.linkTarget) h.write(e.linkTarget, 157, "utf8");
  h.write("ustar\u000000", 257, "binary");
  h.write("root", 265, "ascii");
  h.write("root", 297, "ascii");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + " ", 148, "ascii");
  return h;
}

/** The uncompressed archive of `entries` in the order given. */
export function tar(entries: TarEntry[], mtime: number): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e, mtime));
    if (e.type === "file" && e.data) {
      parts.push(e.data);
      const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
      if (pad) parts.push(Buffer.alloc(pad));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2)); // end of archive
  return Buffer.concat(parts);
}

/**
 * Entries of a flat directory as "./name", sorted by name (byte order), preceded by "./".
 * Modes are normalised (0755 for executables, 0644 otherwise) so a umask does not change bytes.
 */
export function flatDirEntries(dir: string): TarEntry[] {
  const names = readdirSync(dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const entries: TarEntry[] = [{ name: "./", type: "dir", mode: 0o755 }];
  for (const n of names) {
    const p = join(dir, n);
    const st = lstatSync(p);
    if (st.isSymbolicLink())
      entries.push({ name: `./${n}`, type: "symlink", mode: 0o777, linkTarget: readlinkSync(p) });
    else if (st.isFile())
      entries.push({
        name: `./${n}`,
        type: "file",
        mode: st.mode & 0o111 ? 0o755 : 0o644,
        data: readFileSync(p),
      });
    else throw new Error(`release: ${p} is neither a file nor a symlink (the release directory is flat)`);
  }
  return entries;
}

/** gzip without a timestamp or name in its header (Node writes mtime 0), fixed level. */
export function gzip(data: Buffer): Buffer {
  return gzipSync(data, { level: 6 });
}
