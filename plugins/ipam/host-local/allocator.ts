/** Round-robin allocation over a range set, as upstream's host-local allocator. */
import {
  CniError,
  ErrorCode,
  formatIP,
  ipAdd,
  ipEqual,
  type IP,
  type IPConfig,
} from "../../../src/cni/index.js";
import { rangeFor, rangeSetContains, rangeSetString, rangeContains, type RangeSet } from "./config.js";
import type { Store } from "./store.js";

function fail(msg: string): CniError {
  return new CniError(ErrorCode.Internal, msg);
}

/** Iterates candidate IPs starting after the last reserved one (RangeIter in upstream). */
class RangeIter {
  private rangeIdx = 0;
  private cur: IP | null = null;
  private startIP: IP | null = null;

  constructor(
    private readonly set: RangeSet,
    last: IP | null,
  ) {
    if (last && rangeSetContains(set, last)) {
      this.rangeIdx = set.findIndex((r) => rangeContains(r, last));
      this.cur = last;
    } else {
      this.startIP = set[0]!.rangeStart;
    }
  }

  next(): { ip: IP; prefix: number; gateway: IP } | null {
    let r = this.set[this.rangeIdx]!;
    if (this.cur === null) {
      this.cur = r.rangeStart;
      this.startIP = this.cur;
      if (ipEqual(this.cur, r.gateway)) return this.next();
      return { ip: this.cur, prefix: r.subnet.prefix, gateway: r.gateway };
    }
    if (ipEqual(this.cur, r.rangeEnd)) {
      this.rangeIdx = (this.rangeIdx + 1) % this.set.length;
      r = this.set[this.rangeIdx]!;
      this.cur = r.rangeStart;
    } else {
      this.cur = ipAdd(this.cur, 1n);
    }
    if (this.startIP === null) this.startIP = this.cur;
    else if (ipEqual(this.cur, this.startIP)) return null;
    if (ipEqual(this.cur, r.gateway)) return this.next();
    return { ip: this.cur, prefix: r.subnet.prefix, gateway: r.gateway };
  }
}

/** Allocates one IP from range set `rangeId` (the store must be locked by the caller). */
export function allocate(
  store: Store,
  set: RangeSet,
  rangeId: number,
  id: string,
  ifname: string,
  requested: IP | undefined,
): IPConfig {
  if (requested) {
    const r = rangeFor(set, requested);
    if (ipEqual(requested, r.gateway)) throw fail(`requested ip ${formatIP(requested)} is subnet's gateway`);
    if (!store.reserve(id, ifname, requested, rangeId)) {
      throw fail(
        `requested IP address ${formatIP(requested)} is not available in range set ${rangeSetString(set)}`,
      );
    }
    return { address: `${formatIP(requested)}/${r.subnet.prefix}`, gateway: formatIP(r.gateway) };
  }
  for (const ip of store.getByID(id, ifname)) {
    if (rangeSetContains(set, ip)) {
      throw fail(`${formatIP(ip)} has been allocated to ${id}, duplicate allocation is not allowed`);
    }
  }
  const iter = new RangeIter(set, store.lastReservedIP(rangeId));
  for (let c = iter.next(); c; c = iter.next()) {
    if (store.reserve(id, ifname, c.ip, rangeId)) {
      return { address: `${formatIP(c.ip)}/${c.prefix}`, gateway: formatIP(c.gateway) };
    }
  }
  throw fail(`no IP addresses available in range set: ${rangeSetString(set)}`);
}
