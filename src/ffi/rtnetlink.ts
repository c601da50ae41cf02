/**
 * rtnetlink lookups from the compiled plugins over the libc binding, in the calling thread's
 * network namespace: the route the kernel would take to an address (RTM_GETROUTE, the request
 * `ip route get` sends) and a link's name by index (RTM_GETLINK). One socket, two round trips,
 * no `ip` process.
 */
import type { Libc } from "./libc.js";
import {
  NETLINK_ROUTE,
  NetlinkError,
  NetlinkSocket,
  attr,
  concatBytes,
  parseAttrs,
  payloadOf,
} from "./netlink.js";

const RTM_GETLINK = 18;
const RTM_GETROUTE = 26;
const RTA_DST = 1;
const RTA_OIF = 4;
const IFLA_IFNAME = 3;
const AF_INET = 2;
const AF_INET6 = 10;
/** struct rtmsg and struct ifinfomsg: what precedes the attributes of their messages. */
const RTMSG_LEN = 12;
const IFINFOMSG_LEN = 16;

/** The RTM_GETROUTE request for one address (`address`: 4 or 16 bytes, network order). */
export function routeGetRequest(address: Uint8Array): Uint8Array {
  const rtmsg = new Uint8Array(RTMSG_LEN);
  rtmsg[0] = address.byteLength === 4 ? AF_INET : AF_INET6;
  rtmsg[1] = address.byteLength * 8; // rtm_dst_len: a host route
  return concatBytes([rtmsg, attr(RTA_DST, address)]);
}

/** The RTM_GETLINK request for one interface index. */
export function linkGetRequest(index: number): Uint8Array {
  const ifinfo = new Uint8Array(IFINFOMSG_LEN);
  new DataView(ifinfo.buffer).setInt32(4, index, true);
  return ifinfo;
}

/**
 * The name of the device the kernel routes `address` through, or undefined when it has no
 * route there (the kernel's ENETUNREACH, EHOSTUNREACH...: what makes `ip route get` fail).
 * Other failures (no netlink) throw.
 */
export function routeDevice(libc: Libc, address: Uint8Array): string | undefined {
  const sock = NetlinkSocket.open(libc, NETLINK_ROUTE);
  try {
    let route: Uint8Array[];
    try {
      route = sock.query(RTM_GETROUTE, 0, routeGetRequest(address), "route lookup");
    } catch (e) {
      if (e instanceof NetlinkError) return undefined;
      throw e;
    }
    const oif = route[0] && parseAttrs(route[0], RTMSG_LEN).get(RTA_OIF);
    if (!oif) return undefined;
    const index = new DataView(oif.buffer, oif.byteOffset + 4, 4).getUint32(0, true);
    const link = sock.query(RTM_GETLINK, 0, linkGetRequest(index), `link ${index}`);
    const name = link[0] && parseAttrs(link[0], IFINFOMSG_LEN).get(IFLA_IFNAME);
    if (!name) return undefined;
    const bytes = payloadOf(name);
    const end = bytes.indexOf(0);
    return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
  } finally {
    sock.close();
  }
}
