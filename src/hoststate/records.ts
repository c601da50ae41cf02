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
 * never read each other's. An inode is reused once its namespace is gone: a namespace that gets it
 * finds the dead one's records, which are then stale hints (above) that its GC removes. A write goes to
 * `.tmp/<owner>.<pid>` beside the records and is renamed into place, so a reader never sees half a
 * record; what a kill before the rename leaves, `remove` of that owner takes too (`unfinished`
 * lists it for a GC). Temporary files live in their own directory so that `remove` never reads
 * the directory of every attachment's record (10,000 names with 10,000 containers): it deletes
 * its file by name and reads only `.tmp`, which is empty but for writes under way. Directories
 * exist only while they hold something (`.tmp` stays empty while records are there; the last
 * `remove` takes both). (A temporary file that a killed write of an earlier
 * version left beside the records, `<owner>.<pid>.tmp`, is no record and goes at reboot.)
 *
 * Notes of use (`use`, `release`): `.users/<shared>/<owner>`, an empty file per attachment that
 * uses a shared object (a subnet's chain and counter), so that a DEL asks the kernel to drop the
 * object only when no other note is left, by name, without reading a directory of every
 * attachment. Hints too: the kernel refuses to drop what is still used.
 */
import {
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { staleOwner, type Attachment } from "../cni/attachment.js";

export interface AttachmentRecords {
  /** Write (replace) the record of `owner` (an nftables owner hash). */
  write(owner: string, data: unknown): void;
  /** The record, or undefined when there is none or it cannot be read. */
  read(owner: string): unknown;
  /** Removes the record and what a write killed before its rename left of it; gone is fine. */
  remove(owner: string): void;
  /** Owners that have a record. */
  owners(): string[];
  /** Owners of writes killed before their rename (a temporary file and no record). */
  unfinished(): string[];
  /**
   * Notes that `owner` uses the shared object `name` (a subnet's chain and counter), before the
   * ADD that makes it a user runs nft, like a record.
   */
  use(name: string, owner: string): void;
  /**
   * Drops `owner`'s use of `name`; true when no use of it is left (nor was ever noted: the
   * kernel decides then), false while another owner's is there.
   */
  release(name: string, owner: string): boolean;
  /** Every noted use, as [name, owner] (for a GC). */
  uses(): Array<[name: string, owner: string]>;
}

const RECORDS_ROOT = "/run/cni-nft/records";
const OWNER_RE = /^[0-9a-f]{16}-[0-9a-f]{16}$/;
/** A write under way or killed: `.tmp/<owner>.<pid>`. */
const UNFINISHED_RE = /^([0-9a-f]{16}-[0-9a-f]{16})\.\d+$/;
const TMP = ".tmp";
/** Uses of shared objects: `.users/<name>/<owner>`, empty files (see {@link AttachmentRecords.use}). */
const USERS = ".users";
const SHARED_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;

function checkShared(name: string): string {
  if (!SHARED_RE.test(name)) throw new Error(`not a shared object's name: ${JSON.stringify(name)}`);
  return name;
}

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
  const where = (): string => (dir ??= join(root, component, `netns-${statSync(netns).ino}`));
  const names = (sub = ""): string[] => {
    try {
      return readdirSync(join(where(), sub));
    } catch {
      return [];
    }
  };
  const tidy = (): void => {
    for (const d of [join(where(), TMP), where()])
      try {
        rmdirSync(d);
      } catch {
        // not empty (or gone): other attachments' records or writes
      }
  };
  return {
    write(owner, data) {
      const path = join(where(), checkOwner(owner));
      const tmp = join(where(), TMP, `${owner}.${process.pid}`);
      // A concurrent remove takes the directories away once they are empty: create them again.
      for (let attempt = 0; ; attempt++) {
        mkdirSync(join(where(), TMP), { recursive: true, mode: 0o700 });
        try {
          writeFileSync(tmp, JSON.stringify(data));
          renameSync(tmp, path);
          return;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "ENOENT" || attempt >= 10) throw e;
        }
      }
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
      for (const name of names(TMP))
        if (UNFINISHED_RE.exec(name)?.[1] === owner) rmSync(join(where(), TMP, name), { force: true });
      tidy();
    },
    owners() {
      return names().filter((f) => OWNER_RE.test(f));
    },
    unfinished() {
      return [...new Set(names(TMP).flatMap((f) => UNFINISHED_RE.exec(f)?.[1] ?? []))];
    },
    use(name, owner) {
      const d = join(where(), USERS, checkShared(name));
      // A concurrent release takes the directory away once it is empty: create it again.
      for (let attempt = 0; ; attempt++) {
        mkdirSync(d, { recursive: true, mode: 0o700 });
        try {
          writeFileSync(join(d, checkOwner(owner)), "");
          return;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "ENOENT" || attempt >= 10) throw e;
        }
      }
    },
    release(name, owner) {
      const d = join(where(), USERS, checkShared(name));
      rmSync(join(d, checkOwner(owner)), { force: true });
      try {
        rmdirSync(d);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOTEMPTY" || code === "EEXIST") return false;
        if (code !== "ENOENT") throw e;
      }
      for (const x of [join(where(), USERS), join(where(), TMP), where()])
        try {
          rmdirSync(x);
        } catch {
          break; // other uses, records or writes
        }
      return true;
    },
    uses() {
      return names(USERS).flatMap((name) =>
        names(join(USERS, name))
          .filter((o) => OWNER_RE.test(o))
          .map((o): [string, string] => [name, o]),
      );
    },
  };
}

/** In memory, for tests without root. */
export function memoryRecords(): AttachmentRecords & { readonly files: Map<string, string> } {
  const files = new Map<string, string>();
  const users = new Map<string, Set<string>>();
  return {
    files,
    write: (owner, data) => void files.set(checkOwner(owner), JSON.stringify(data)),
    read: (owner) => {
      const text = files.get(checkOwner(owner));
      return text === undefined ? undefined : (JSON.parse(text) as unknown);
    },
    remove: (owner) => void files.delete(checkOwner(owner)),
    owners: () => [...files.keys()],
    unfinished: () => [],
    use: (name, owner) => {
      const key = checkShared(name);
      users.set(key, (users.get(key) ?? new Set()).add(checkOwner(owner)));
    },
    release: (name, owner) => {
      const u = users.get(checkShared(name));
      u?.delete(checkOwner(owner));
      if (u?.size) return false;
      users.delete(name);
      return true;
    },
    uses: () => [...users].flatMap(([name, u]) => [...u].map((o): [string, string] => [name, o])),
  };
}

/**
 * Owners of `network` with a record or an unfinished one whose attachment is not in `valid`:
 * what a GC of a backend that keeps records removes.
 */
export function staleOwners(
  records: AttachmentRecords,
  network: string,
  valid: readonly Attachment[],
): string[] {
  return [...new Set([...records.owners(), ...records.unfinished()])].filter(staleOwner(network, valid));
}
