/**
 * The on-disk store, byte-compatible with upstream's host-local (plugins/ipam/host-local/backend/disk):
 * `<dataDir>/<network>/<ip>` holds `<containerID>\r\n<ifname>` (older upstream wrote just the
 * ID; both are read), `last_reserved_ip.<rangeset index>` holds the last IP handed out, and
 * every operation runs under flock(2) on `<dataDir>/<network>/lock`.
 *
 * A reservation is written to `.reserving.<ip>` and renamed to `<ip>` (upstream creates `<ip>`
 * and then writes it): a crash between the two leaves no empty `<ip>` that DEL, which matches
 * files by content, could never free. Every writer (ours and upstream's) writes under the lock,
 * so a file seen empty under the lock is a crash's remnant (of upstream, or of an older
 * version), never a write in progress: DEL frees it, and a leftover `.reserving.` file too.
 */
import {
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  unlinkSync,
  renameSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { formatIP, parseIP, withFlock, type IP } from "../../../src/cni/index.js";

const LAST_IP_PREFIX = "last_reserved_ip.";
const LINE_BREAK = "\r\n";
/** Prefix of a reservation being written; never parsed as an IP, so never taken for one. */
const RESERVING_PREFIX = ".reserving.";

export class Store {
  readonly dir: string;

  constructor(network: string, dataDir: string) {
    this.dir = join(dataDir, network);
    mkdirSync(this.dir, { recursive: true, mode: 0o755 });
  }

  /** Runs `fn` under the store's flock (mutually exclusive with upstream's host-local). */
  locked<T>(fn: () => T | Promise<T>): Promise<T> {
    return withFlock(join(this.dir, "lock"), fn, 0o750); // upstream creates it 0750
  }

  /**
   * Reserves the IP for the attachment (under the lock); false when it is taken. The file appears
   * whole or not at all (write, fsync, rename). Records it as last reserved.
   */
  reserve(id: string, ifname: string, ip: IP, rangeId: number): boolean {
    const name = join(this.dir, formatIP(ip));
    if (exists(name)) return false;
    const temp = join(this.dir, RESERVING_PREFIX + formatIP(ip));
    const fd = openSync(temp, "w", 0o644);
    try {
      writeSync(fd, id.trim() + LINE_BREAK + ifname);
      fsyncSync(fd);
      closeSync(fd);
      renameSync(temp, name);
    } catch (e) {
      this.remove(temp);
      throw e;
    }
    writeFileSync(join(this.dir, LAST_IP_PREFIX + rangeId), formatIP(ip), { mode: 0o644 });
    return true;
  }

  lastReservedIP(rangeId: number): IP | null {
    try {
      return parseIP(readFileSync(join(this.dir, LAST_IP_PREFIX + rangeId), "utf8"));
    } catch {
      return null;
    }
  }

  /** Every regular file under the store (recursively, like Go's filepath.Walk) with its trimmed content. */
  private *entries(dir = this.dir): Generator<{ path: string; name: string; data: string }> {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      try {
        if (statSync(path).isDirectory()) {
          yield* this.entries(path);
          continue;
        }
        yield { path, name, data: readFileSync(path, "utf8").trim() };
      } catch {
        /* vanished or unreadable: skip, as upstream */
      }
    }
  }

  private keys(id: string, ifname: string): [string, string] {
    return [id.trim() + LINE_BREAK + ifname, id.trim()];
  }

  /** IPs held by this attachment (new or old file format). */
  getByID(id: string, ifname: string): IP[] {
    const [k, old] = this.keys(id, ifname);
    const out: IP[] = [];
    for (const e of this.entries()) {
      if (e.data !== k && e.data !== old) continue;
      const ip = parseIP(e.name);
      if (ip) out.push(ip);
    }
    return out;
  }

  findByID(id: string, ifname: string): boolean {
    const [k, old] = this.keys(id, ifname);
    const all = [...this.entries()];
    return all.some((e) => e.data === k) || all.some((e) => e.data === old);
  }

  /**
   * Releases every IP held by the attachment; falls back to the old ID-only format. Also frees
   * what a crash left (see the top of this file): empty files, files torn inside this
   * attachment's interface name, unfinished `.reserving.` files. A file torn inside the ID is
   * left to GC: it could be another container's ID in the old ID-only format.
   */
  releaseByID(id: string, ifname: string): void {
    const [k, old] = this.keys(id, ifname);
    if (!this.releaseByKey(k)) this.releaseByKey(old);
    for (const e of this.entries()) {
      if (e.name.startsWith(RESERVING_PREFIX)) this.remove(e.path);
      else if (parseIP(e.name) && (e.data === "" || (k.startsWith(e.data) && e.data.length > old.length)))
        this.remove(e.path);
    }
  }

  private releaseByKey(match: string): boolean {
    let found = false;
    for (const e of this.entries()) {
      if (e.data !== match) continue;
      try {
        unlinkSync(e.path);
        found = true;
      } catch {
        /* tolerate */
      }
    }
    return found;
  }

  /** Reservations (files named by an IP) with their owner. */
  reservations(): { ip: IP; path: string; id: string; ifname: string | undefined }[] {
    const out = [];
    for (const e of this.entries()) {
      const ip = parseIP(e.name);
      if (!ip) continue;
      const [id, ifname] = e.data.split(LINE_BREAK);
      out.push({ ip, path: e.path, id: id ?? "", ifname });
    }
    return out;
  }

  /** Unfinished reservations a crash left; nobody owns them (see the top of this file). */
  unfinished(): string[] {
    return [...this.entries()].filter((e) => e.name.startsWith(RESERVING_PREFIX)).map((e) => e.path);
  }

  remove(path: string): void {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw e;
  }
}
