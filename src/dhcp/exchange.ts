/**
 * One DHCP exchange on one interface, run inside the container's network namespace (the daemon
 * starts it there with nsenter; a Node or Bun process cannot switch namespaces itself).
 *
 * Transport: a UDP socket on 0.0.0.0:68 (SO_REUSEADDR, so several interfaces of one namespace
 * can run exchanges; replies are matched by xid and hardware address). Two things a raw packet
 * socket would not need, and why they are safe:
 * - Broadcasts leave through a host route `255.255.255.255/32 dev IF proto dhcp` added for the
 *   exchange and removed after it: with no address and no route, the kernel refuses to send
 *   (ENETUNREACH), and the route also pins the broadcast to IF when another interface holds the
 *   default route. The daemon runs one exchange per namespace at a time.
 * - While the interface has no address, requests carry the broadcast bit (RFC 2131 4.1: a client
 *   that cannot receive unicast before it is configured sets it), so replies reach the socket.
 */
import { randomInt } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { runChecked, systemRunner } from "../process/index.js";
import {
  DHCP_CLIENT_PORT,
  DHCP_SERVER_PORT,
  MessageType,
  Option,
  decode,
  encode,
  ip4Buffer,
  messageType,
  type DhcpMessage,
} from "./message.js";

/** "down": the lease expired; the interface goes down, as upstream does. */
export type ExchangeKind = "acquire" | "renew" | "rebind" | "release" | "down";

export interface ExchangeRequest {
  kind: ExchangeKind;
  ifname: string;
  /** Option 61 value, hex. */
  clientId: string;
  /** Extra options to send, code → hex value (provide options, parameter request list). */
  options: Record<string, string>;
  /** For renew/rebind/release: the leased address and the server that granted it. */
  address?: string;
  server?: string;
  /** Wait for one answer before sending again, ms (upstream's -timeout). */
  timeoutMs: number;
  /** Give up after, ms (upstream's -resendtimeout). */
  deadlineMs: number;
  /** Longest wait between resends, ms (upstream's -resendmax). */
  resendMaxMs: number;
  /** Broadcast bit even once configured (upstream's -broadcast). */
  broadcast: boolean;
}

export type ExchangeResponse =
  | { ok: true; ack?: string; startedAt: number; mac: string }
  | { ok: false; gone?: boolean; nak?: boolean; error: string };

async function ip(args: string[]): Promise<string> {
  return (await runChecked(systemRunner, { argv: ["ip", ...args], timeoutMs: 30_000 })).stdout;
}

interface LinkInfo {
  mac: string;
  up: boolean;
  ipv4: string[];
}

/** The interface's MAC, state and IPv4 addresses: one `ip -j addr show` (ENODEV: undefined). */
async function link(ifname: string): Promise<LinkInfo | undefined> {
  try {
    const [l] = JSON.parse(await ip(["-j", "addr", "show", "dev", ifname])) as {
      address: string;
      flags: string[];
      addr_info?: { family: string; local: string }[];
    }[];
    if (!l) return undefined;
    const ipv4 = (l.addr_info ?? []).filter((a) => a.family === "inet").map((a) => a.local);
    return { mac: l.address, up: l.flags.includes("UP"), ipv4 };
  } catch {
    return undefined;
  }
}

class Exchange {
  private readonly socket: Socket;
  private waiter: ((m: DhcpMessage) => boolean) | undefined;
  /** The temporary route of this exchange (see the file's comment), removed by close(). */
  private route: string[] | undefined;

  constructor(
    private readonly req: ExchangeRequest,
    private readonly mac: string,
  ) {
    this.socket = createSocket({ type: "udp4", reuseAddr: true });
    this.socket.on("message", (buf) => {
      let m: DhcpMessage;
      try {
        m = decode(buf);
      } catch {
        return; // not DHCP, or mangled: ignore as any client does
      }
      if (m.op === 2 && m.chaddr === this.mac && this.waiter?.(m)) this.waiter = undefined;
    });
  }

  async open(routeTo: string | undefined): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once("error", reject);
      this.socket.bind(DHCP_CLIENT_PORT, "0.0.0.0", () => {
        this.socket.off("error", reject);
        this.socket.setBroadcast(true);
        resolve();
      });
    });
    if (routeTo) {
      const route = [`${routeTo}/32`, "dev", this.req.ifname, "proto", "dhcp"];
      await ip(["route", "del", ...route]).catch(() => "");
      await ip(["route", "add", ...route, "scope", "link"]);
      this.route = route;
    }
  }

  async close(): Promise<void> {
    this.socket.close();
    if (this.route) await ip(["route", "del", ...this.route]).catch(() => "");
  }

  message(type: number, xid: number, fields: Partial<DhcpMessage>, extra: [number, Buffer][]): DhcpMessage {
    const options = new Map<number, Buffer>([[Option.MessageType, Buffer.from([type])]]);
    for (const [code, v] of extra) options.set(code, v);
    options.set(Option.ClientId, Buffer.from(this.req.clientId, "hex"));
    if (type !== MessageType.Release) {
      options.set(Option.MaxMessageSize, Buffer.from([0x05, 0xdc])); // 1500: we read whole datagrams
      for (const [code, hex] of Object.entries(this.req.options))
        options.set(Number(code), Buffer.from(hex, "hex"));
    }
    return {
      op: 1,
      xid,
      broadcast: false,
      ciaddr: "0.0.0.0",
      yiaddr: "0.0.0.0",
      siaddr: "0.0.0.0",
      giaddr: "0.0.0.0",
      chaddr: this.mac,
      options,
      ...fields,
    };
  }

  send(m: DhcpMessage, to: string): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.send(encode(m), DHCP_SERVER_PORT, to, (e) => (e ? reject(e) : resolve())),
    );
  }

  /**
   * Sends `m` and resends it (2 s, 4 s, 8 s... up to resendMax, each ±1 s, as RFC 2131 4.1) until
   * a reply of one of `types` with its xid arrives; rejects at the deadline.
   */
  async transact(m: DhcpMessage, to: string, types: number[], deadline: number): Promise<DhcpMessage> {
    let delay = 2000;
    for (;;) {
      const reply = new Promise<DhcpMessage | undefined>((resolve) => {
        const wait = Math.min(this.req.timeoutMs, delay + randomInt(-1000, 1000), deadline - Date.now());
        const timer = setTimeout(
          () => {
            this.waiter = undefined;
            resolve(undefined);
          },
          Math.max(wait, 0),
        );
        this.waiter = (r) => {
          if (r.xid !== m.xid || !types.includes(messageType(r) ?? 0)) return false;
          clearTimeout(timer);
          resolve(r);
          return true;
        };
      });
      await this.send(m, to);
      const r = await reply;
      if (r) return r;
      if (Date.now() >= deadline) throw new Error("timed out");
      delay = Math.min(delay * 2, this.req.resendMaxMs);
    }
  }
}

function newXid(): number {
  return randomInt(0, 2 ** 32 - 1);
}

async function acquire(ex: Exchange, req: ExchangeRequest, deadline: number): Promise<ExchangeResponse> {
  for (;;) {
    const startedAt = Date.now();
    const xid = newXid();
    const discover = ex.message(MessageType.Discover, xid, { broadcast: true }, []);
    const offer = await ex
      .transact(discover, "255.255.255.255", [MessageType.Offer], deadline)
      .catch((e: Error) => {
        throw new Error(`no DHCPOFFER on ${req.ifname}: ${e.message}`);
      });
    const server = offer.options.get(Option.ServerId);
    if (!server) continue; // RFC 2131: an OFFER must name its server
    const request = ex.message(MessageType.Request, xid, { broadcast: true }, [
      [Option.RequestedIP, ip4Buffer(offer.yiaddr)],
      [Option.ServerId, server],
    ]);
    const ack = await ex
      .transact(request, "255.255.255.255", [MessageType.Ack, MessageType.Nak], deadline)
      .catch((e: Error) => {
        throw new Error(`no DHCPACK on ${req.ifname}: ${e.message}`);
      });
    if (messageType(ack) === MessageType.Ack)
      return { ok: true, ack: encode(ack).toString("hex"), startedAt, mac: "" };
    if (Date.now() >= deadline) return { ok: false, nak: true, error: `DHCPNAK on ${req.ifname}` };
  }
}

/** RENEWING (unicast to the server) or REBINDING (broadcast): RFC 2131 4.3.2, ciaddr set. */
async function extend(ex: Exchange, req: ExchangeRequest, deadline: number): Promise<ExchangeResponse> {
  const startedAt = Date.now();
  const m = ex.message(MessageType.Request, newXid(), { ciaddr: req.address!, broadcast: req.broadcast }, []);
  const to = req.kind === "renew" ? req.server! : "255.255.255.255";
  const r = await ex.transact(m, to, [MessageType.Ack, MessageType.Nak], deadline);
  if (messageType(r) === MessageType.Nak) return { ok: false, nak: true, error: `DHCPNAK from ${to}` };
  return { ok: true, ack: encode(r).toString("hex"), startedAt, mac: "" };
}

export async function runExchange(req: ExchangeRequest): Promise<ExchangeResponse> {
  const l = await link(req.ifname);
  if (!l) return { ok: false, gone: true, error: `link ${req.ifname} not found` };
  if (req.kind === "down") {
    await ip(["link", "set", "dev", req.ifname, "down"]);
    return { ok: true, startedAt: Date.now(), mac: l.mac };
  }
  if (!l.up) await ip(["link", "set", "dev", req.ifname, "up"]);
  const ex = new Exchange(req, l.mac);
  const deadline = Date.now() + req.deadlineMs;
  try {
    // A release is unicast to its server from the leased address; when the main plugin never
    // configured it (an ADD that failed later) the server would drop a packet from 0.0.0.0 as a
    // martian, so it is broadcast instead (the server matches ciaddr and the client id).
    const releaseTo = l.ipv4.includes(req.address ?? "") ? req.server! : "255.255.255.255";
    const broadcasts = req.kind === "acquire" || req.kind === "rebind" || releaseTo === "255.255.255.255";
    await ex.open(broadcasts ? "255.255.255.255" : undefined);
    if (req.kind === "release") {
      const m = ex.message(MessageType.Release, newXid(), { ciaddr: req.address! }, [
        [Option.ServerId, ip4Buffer(req.server!)],
      ]);
      await ex.send(m, releaseTo);
      return { ok: true, startedAt: Date.now(), mac: l.mac };
    }
    const r = req.kind === "acquire" ? await acquire(ex, req, deadline) : await extend(ex, req, deadline);
    return r.ok ? { ...r, mac: l.mac } : r;
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  } finally {
    await ex.close();
  }
}

/** Entry of the helper process: request on stdin, response on stdout. */
export async function exchangeMain(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const req = JSON.parse(Buffer.concat(chunks).toString("utf8")) as ExchangeRequest;
  process.stdout.write(JSON.stringify(await runExchange(req)) + "\n");
}
