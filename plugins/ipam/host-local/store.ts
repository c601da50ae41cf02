/**
 * The on-disk store, byte-compatible with upstream's host-local (plugins/ipam/host-local/backend/disk):
 * `<dataDir>/<network>/<ip>` holds `<containerID>\r\n<ifname>` (older upstream wrote just the
 * ID; both are read), `last_reserved_ip.<rangeset index>` holds the last IP handed out, and
 * every operation runs under flock(2) on `<dataDir>/<network>/lock`.
 */
import {
  closeSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
  constants,
} from "node:fs";
import { join } from "node:path";
import { formatIP, parseIP, withFlock, type IP } from "../../../src/cni/index.js";

const LAST_IP_PREFIX = "last_reserved_ip.";
const LINE_BREAK = "\r\n";

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

  /** Creates the IP's file exclusively; false when it is taken. Records it as last reserved. */
  reserve(id: string, ifname: string, ip: IP, rangeId: number): boolean {
    const name = join(this.dir, formatIP(ip));
    let fd: number;
    try {
      fd = openSync(name, constants.O_RDWR | constants.O_EXCL | constants.O_CREAT, 0o644);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw e;
    }
    try {
      writeSync(fd, id.trim() + LINE_BREAK + ifname);
      closeSync(fd);
    } catch (e) {
      unlinkSync(name);
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

  /** Releases every IP held by the attachment; falls back to the old ID-only format. */
  releaseByID(id: string, ifname: string): void {
    const [k, old] = this.keys(id, ifname);
    if (!this.releaseByKey(k)) this.releaseByKey(old);
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

  remove(path: string): void {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  }
}
