/**
 * Deleting conntrack entries through ctnetlink, without the `conntrack` command, as the command
 * does it: one dump filtered in the kernel by protocol and original destination port
 * (CTA_FILTER, kernel 5.8+), then an IPCTNL_MSG_CT_DELETE of each entry by its original tuple
 * and ID (an entry made again since the dump is left alone). The kernel filters a dump of one
 * family only, so a port costs one dump per family. A delete without a tuple but with CTA_FILTER
 * (a filtered flush, one request) is refused by the kernel (6.18: EOPNOTSUPP).
 */
import type { Libc } from "../ffi/libc.js";
import {
  NETLINK_NETFILTER,
  NetlinkError,
  parseAttrs,
  NetlinkSocket,
  be16,
  concatBytes,
  nested,
  u32,
  u8,
  attr,
} from "../ffi/netlink.js";

const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
const CT_GET = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
const CT_DELETE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
const NFNETLINK_V0 = 0;
const AF_INET = 2;
const AF_INET6 = 10;
const IPPROTO_UDP = 17;

const CTA_TUPLE_ORIG = 1;
const CTA_ID = 12;
const CTA_ZONE = 18;
const CTA_FILTER = 25;
const CTA_TUPLE_PROTO = 2;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_DST_PORT = 3;
const CTA_FILTER_ORIG_FLAGS = 1;
const CTA_FILTER_REPLY_FLAGS = 2;
/** CTA_FILTER_F_CTA_PROTO_NUM and CTA_FILTER_F_CTA_PROTO_DST_PORT of the kernel's ctnetlink. */
const FILTER_PROTO_NUM = 1 << 3;
const FILTER_PROTO_DST_PORT = 1 << 5;

/** The dump request: family header, the original tuple's protocol and port, the filter. */
export function udpDumpRequest(port: number, family: 4 | 6): Uint8Array {
  return concatBytes([
    Uint8Array.of(family === 4 ? AF_INET : AF_INET6, NFNETLINK_V0, 0, 0),
    nested(
      CTA_TUPLE_ORIG,
      nested(CTA_TUPLE_PROTO, attr(CTA_PROTO_NUM, u8(IPPROTO_UDP)), attr(CTA_PROTO_DST_PORT, be16(port))),
    ),
    nested(
      CTA_FILTER,
      attr(CTA_FILTER_ORIG_FLAGS, u32(FILTER_PROTO_NUM | FILTER_PROTO_DST_PORT)),
      attr(CTA_FILTER_REPLY_FLAGS, u32(0)),
    ),
  ]);
}

/**
 * Deletes the UDP entries of `families` whose original destination port is one of `ports`, in
 * the calling thread's namespace; returns how many. Throws a NetlinkError where the kernel
 * refuses the dump or a delete (an entry already gone is not an error).
 */
export function deleteUdpEntries(
  libc: Libc,
  ports: readonly number[],
  families: ReadonlyArray<4 | 6>,
): number {
  const sock = NetlinkSocket.open(libc, NETLINK_NETFILTER);
  let deleted = 0;
  try {
    for (const [port, family] of ports.flatMap((p) => families.map((f) => [p, f] as const))) {
      const what = `IPv${family} conntrack entries of UDP port ${port}`;
      const entries = sock.dump(CT_GET, udpDumpRequest(port, family), `dump of ${what}`);
      for (const body of entries) {
        const attrs = parseAttrs(body, 4);
        const tuple = attrs.get(CTA_TUPLE_ORIG);
        if (!tuple) continue;
        const keep = [CTA_ID, CTA_ZONE].flatMap((t) => attrs.get(t) ?? []);
        try {
          sock.request(CT_DELETE, 0, concatBytes([body.subarray(0, 4), tuple, ...keep]), `delete of ${what}`);
          deleted++;
        } catch (e) {
          if (!(e instanceof NetlinkError && e.code === "ENOENT")) throw e;
        }
      }
    }
  } finally {
    sock.close();
  }
  return deleted;
}
