/**
 * Where the datagrams of a UDP flow through a host port went, hop by hop: nft counters in the
 * client's, the host's and the server's namespaces (a table `inet flowmeter` of filter chains
 * that only count, policy accept), read before the flow starts and after its client stopped.
 *
 * A datagram the client never got back is placed on the first hop that did not count it. The
 * host's own hops are counted at the very first (prerouting, priority -400: before conntrack,
 * before any NAT) and the very last (postrouting, priority 400: after every NAT) hook, by the
 * headers the datagram must have there (after DNAT: the server's address and port; a reply
 * after its reverse NAT: the host port), so everything a migration changes (rules, NAT
 * bindings, conntrack entries, filter verdicts of any table) lies between two of them: a
 * datagram missing between those is dropped or mistranslated by the host. Anything missing
 * elsewhere was lost on a link (a veth's queue, the per-CPU input backlog) or in a socket,
 * which no migration touches; the machine's drop counters (softnet_stat, links, UDP errors)
 * say whether the kernel counted such a drop while the flow ran.
 */
import { readFileSync } from "node:fs";
import type { Netns } from "./netns.js";

const TABLE = "flowmeter";

export interface UdpPath {
  client: Netns;
  host: Netns;
  server: Netns;
  /** The host port the client sends to. */
  hostPort: number;
  /** The server's address and port behind it (the DNAT's target). */
  serverIp: string;
  serverPort: number;
}

/** Counter names, in the order a message passes them. */
const HOPS = [
  "client_sent",
  "host_in",
  "host_out",
  "server_got",
  "server_sent",
  "host_reply_in",
  "host_reply_out",
  "client_got",
] as const;
type Hop = (typeof HOPS)[number];
export type HopCounts = Record<Hop, number>;

/** What each segment between two hops is. */
const SEGMENTS: Record<Hop, string> = {
  client_sent: "",
  host_in: "on the link into the host",
  host_out: "in the host (netfilter, NAT, routing)",
  server_got: "on the link to the server",
  server_sent: "in the server (not echoed)",
  host_reply_in: "on the link back into the host",
  host_reply_out: "in the host, reply (netfilter, NAT, routing)",
  client_got: "on the link back to the client",
};
const IN_HOST: ReadonlySet<Hop> = new Set(["host_out", "host_reply_out"]);

function table(chains: Array<[string, string, string[]]>): string {
  const names = chains.flatMap(([, , rules]) => rules.map((r) => r.split(" ").at(-1)!.replace(/"/g, "")));
  return [
    `table inet ${TABLE} {`,
    ...names.map((n) => ` counter ${n} { }`),
    ...chains.map(([name, hook, rules]) => ` chain ${name} { ${hook}; ${rules.join("; ")}; }`),
    "}",
  ].join("\n");
}

/** Installs the counters (idempotent: the table is replaced). */
export async function meterUdpFlow(p: UdpPath): Promise<UdpMeter> {
  const ip = p.serverIp.includes(":") ? "ip6" : "ip";
  const hook = (h: string, prio: number): string => `type filter hook ${h} priority ${prio}`;
  const setups: Array<[Netns, string]> = [
    [
      p.client,
      table([
        ["o", hook("output", 0), [`udp dport ${p.hostPort} counter name "client_sent"`]],
        ["i", hook("input", 0), [`udp sport ${p.hostPort} counter name "client_got"`]],
      ]),
    ],
    [
      p.host,
      table([
        [
          "first",
          hook("prerouting", -400),
          [
            `udp dport ${p.hostPort} counter name "host_in"`,
            `${ip} saddr ${p.serverIp} udp sport ${p.serverPort} counter name "host_reply_in"`,
          ],
        ],
        [
          "last",
          hook("postrouting", 400),
          [
            `${ip} daddr ${p.serverIp} udp dport ${p.serverPort} counter name "host_out"`,
            `udp sport ${p.hostPort} counter name "host_reply_out"`,
          ],
        ],
      ]),
    ],
    [
      p.server,
      table([
        ["i", hook("input", 0), [`udp dport ${p.serverPort} counter name "server_got"`]],
        ["o", hook("output", 0), [`udp sport ${p.serverPort} counter name "server_sent"`]],
      ]),
    ],
  ];
  for (const [ns, text] of setups) {
    await ns.run(["nft", "delete", "table", "inet", TABLE]);
    await ns.sh(["nft", "-f", "-"], text + "\n");
  }
  return new UdpMeter(p);
}

async function counters(ns: Netns): Promise<Map<string, number>> {
  const out = JSON.parse(await ns.sh(["nft", "-j", "list", "counters", "table", "inet", TABLE])) as {
    nftables: Array<{ counter?: { name: string; packets: number } }>;
  };
  return new Map(out.nftables.flatMap((o) => (o.counter ? [[o.counter.name, o.counter.packets]] : [])));
}

/** Drops the kernel counted on the machine and in the flow's namespaces. */
export interface MachineDrops {
  /** /proc/net/softnet_stat, second column, all CPUs (the per-CPU input backlog; machine-wide). */
  backlog: number;
  /** rx and tx drops of the namespaces' links. */
  links: number;
  /** UDP receive buffer and input errors in the namespaces. */
  udp: number;
}

function softnetDrops(): number {
  return readFileSync("/proc/net/softnet_stat", "utf8")
    .trim()
    .split("\n")
    .reduce((sum, line) => sum + parseInt(line.split(/\s+/)[1] ?? "0", 16), 0);
}

async function nsDrops(ns: Netns): Promise<{ links: number; udp: number }> {
  const links = JSON.parse(await ns.sh(["ip", "-s", "-j", "link"])) as Array<{
    stats64?: { rx: { dropped: number }; tx: { dropped: number } };
  }>;
  const snmp = (await ns.sh(["cat", "/proc/net/snmp"])).split("\n").filter((l) => l.startsWith("Udp:"));
  const [head, values] = snmp.map((l) => l.split(/\s+/));
  const udp = (name: string): number => Number(values?.[head?.indexOf(name) ?? -1] ?? 0);
  return {
    links: links.reduce((s, l) => s + (l.stats64 ? l.stats64.rx.dropped + l.stats64.tx.dropped : 0), 0),
    udp: udp("RcvbufErrors") + udp("InErrors"),
  };
}

export class UdpMeter {
  constructor(private readonly p: UdpPath) {}

  /** Takes the counters away (a test that asserts no trace of an address is left on the host). */
  async remove(): Promise<void> {
    for (const ns of [this.p.client, this.p.host, this.p.server])
      await ns.run(["nft", "delete", "table", "inet", TABLE]);
  }

  /** All counters of the three namespaces and the machine's drops, now. */
  async read(): Promise<{ hops: HopCounts; drops: MachineDrops }> {
    const spaces = [this.p.client, this.p.host, this.p.server];
    const all = new Map<string, number>();
    for (const ns of spaces) for (const [k, v] of await counters(ns)) all.set(k, v);
    const drops = { backlog: softnetDrops(), links: 0, udp: 0 };
    for (const ns of spaces) {
      const d = await nsDrops(ns);
      drops.links += d.links;
      drops.udp += d.udp;
    }
    return { hops: Object.fromEntries(HOPS.map((h) => [h, all.get(h) ?? 0])) as HopCounts, drops };
  }
}

export interface UdpAccount {
  /** Datagrams missing in the host between its first and last hook, either way. */
  inHost: number;
  /** Datagrams the client never got back. */
  lost: number;
  /** Drops the kernel counted outside the host's netfilter while the flow ran. */
  machineDrops: number;
  /** Per segment, what went missing there, and the counters: for the failure message. */
  text: string;
}

/** Places every message the client did not get back (`received` of `sent`) on a segment. */
export function accountUdp(
  before: { hops: HopCounts; drops: MachineDrops },
  after: { hops: HopCounts; drops: MachineDrops },
  sent: number,
  received: number,
): UdpAccount {
  const d = Object.fromEntries(HOPS.map((h) => [h, after.hops[h] - before.hops[h]])) as HopCounts;
  const places: string[] = [];
  let inHost = 0;
  for (let i = 1; i < HOPS.length; i++) {
    const gone = d[HOPS[i - 1]!] - d[HOPS[i]!];
    if (gone === 0) continue;
    places.push(`${gone} ${SEGMENTS[HOPS[i]!]}`);
    if (IN_HOST.has(HOPS[i]!)) inHost += gone;
  }
  const inSocket = d.client_got - received;
  if (inSocket) places.push(`${inSocket} in the client's socket`);
  const drops = {
    backlog: after.drops.backlog - before.drops.backlog,
    links: after.drops.links - before.drops.links,
    udp: after.drops.udp - before.drops.udp,
  };
  return {
    inHost,
    lost: sent - received,
    machineDrops: drops.backlog + drops.links + drops.udp,
    text:
      `${sent - received} of ${sent} not echoed: ${places.join(", ") || "none missing on any hop"}; ` +
      `hops ${JSON.stringify(d)}; kernel drops while it ran ${JSON.stringify(drops)}`,
  };
}
