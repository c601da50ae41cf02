/**
 * Per-attachment records: what an ADD is about to write, kept beside the kernel's state so that a
 * DEL whose config carries nothing (no prevResult, no runtimeConfig) can still name its own
 * elements without listing every container's. A record is a hint, never the authority: the
 * nftables backends check ownership in the same transaction that deletes (see
 * plugins/meta/portmap/portmap_nftables.ts), so a stale or torn record can only make a DEL try
 * keys that are not its own, which then fail and are skipped.
 *
 * Files live on tmpfs (`/run`), like the ruleset they describe: both are gone after a reboot. The
 * directory carries the network namespace's inode, so two host namespaces on one machine (tests)
 * never read each other's.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface AttachmentRecords {
  /** Write (replace) the record of `owner` (an nftables owner hash). */
  write(owner: string, data: unknown): void;
  /** The record, or undefined when there is none or it cannot be read. */
  read(owner: string): unknown;
  remove(owner: string): void;
  /** Owners that have a record. */
  owners(): string[];
}

const RECORDS_ROOT = "/run/cni-nft/records";
const OWNER_RE = /^[0-9a-f]{16}-[0-9a-f]{16}$/;

function checkOwner(owner: string): string {
  if (!OWNER_RE.test(owner)) throw new Error(`not an owner hash: ${JSON.stringify(owner)}`);
  return owner;
}

/** Records of `component` for the network namespace at `netns` (default: the caller's own). */
export function fileRecords(
  component: string,
  netns = "/proc/self/ns/net",
  root = RECORDS_ROOT,
): AttachmentRecords {
  let dir: string | undefined;
  const where = (): string => {
    if (dir === undefined) {
      dir = join(root, component, `netns-${statSync(netns).ino}`);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    }
    return dir;
  };
  return {
    write(owner, data) {
      const path = join(where(), checkOwner(owner));
      const tmp = `${path}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(data));
      renameSync(tmp, path);
    },
    read(owner) {
      try {
        return JSON.parse(readFileSync(join(where(), checkOwner(owner)), "utf8")) as unknown;
      } catch {
        return undefined;
      }
    },
    remove(owner) {
      rmSync(join(where(), checkOwner(owner)), { force: true });
    },
    owners() {
      return readdirSync(where()).filter((f) => OWNER_RE.test(f));
    },
  };
}

/** In memory, for tests without root. */
export function memoryRecords(): AttachmentRecords & { readonly files: Map<string, string> } {
  const files = new Map<string, string>();
  return {
    files,
    write: (owner, data) => void files.set(checkOwner(owner), JSON.stringify(data)),
    read: (owner) => {
      const text = files.get(checkOwner(owner));
      return text === undefined ? undefined : (JSON.parse(text) as unknown);
    },
    remove: (owner) => void files.delete(checkOwner(owner)),
    owners: () => [...files.keys()],
  };
}
