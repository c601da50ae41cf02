/**
 * One DHCP lease kept by the daemon: acquired once, renewed at T1 (unicast to its server),
 * rebound at T2 (broadcast), released on DEL. Timing as RFC 2131 4.4.5 and upstream: lease time
 * default 1 h, T1 default half of it, T2 default 85 %; a failed renewal is retried after half of
 * the time left to the next stage (at least 1 s); an expired lease brings the interface down, as
 * upstream does; a vanished interface or namespace ends maintenance quietly.
 */
import type { IPConfig, Result, Route } from "../../../src/cni/index.js";
import type { ExchangeKind, ExchangeRequest, ExchangeResponse } from "../../../src/dhcp/exchange.js";
import {
  Option,
  classlessRoutes,
  decode,
  encode,
  ipListOption,
  maskToPrefix,
  staticRoutes,
  u32Option,
  type DhcpMessage,
} from "../../../src/dhcp/message.js";

export interface LeaseTimes {
  renewAt: number;
  rebindAt: number;
  expireAt: number;
}

/** Starts one exchange in the lease's namespace (the daemon's runner spawns a helper there). */
export type ExchangeRunner = (netns: string, req: ExchangeRequest) => Promise<ExchangeResponse>;

/** Who the lease is for: what a restarted daemon needs to carry on. */
export interface LeaseIdentity {
  clientId: string;
  network: string;
  containerId: string;
  ifname: string;
  netns: string;
  options: Record<string, string>;
}

export interface LeaseParams extends LeaseIdentity {
  timeoutMs: number;
  deadlineMs: number;
  resendMaxMs: number;
  broadcast: boolean;
  log(msg: string): void;
  /** Called when the lease's state changes (acquired, renewed, ended): the daemon persists it. */
  changed?(): void;
}

/** What survives a daemon restart (see DhcpDaemon's state file). */
export interface StoredLease extends LeaseIdentity {
  /** The last ACK, hex, and when the exchange that got it started. */
  ack: string;
  startedAt: number;
}

const DEFAULT_LEASE_S = 3600;

export function leaseTimes(ack: DhcpMessage, startedAt: number): LeaseTimes {
  const lease = u32Option(ack, Option.LeaseTime) ?? DEFAULT_LEASE_S;
  const t2 = u32Option(ack, Option.RebindingTime) ?? Math.floor((lease * 85) / 100);
  const t1 = u32Option(ack, Option.RenewalTime) ?? Math.floor(lease / 2);
  return {
    renewAt: startedAt + t1 * 1000,
    rebindAt: startedAt + t2 * 1000,
    expireAt: startedAt + lease * 1000,
  };
}

/** The IPAM result upstream builds from an ACK: one address, routes from 121, else 33 + default. */
export function leaseResult(ack: DhcpMessage, priority: number | undefined): Result {
  const mask = ack.options.get(Option.SubnetMask);
  if (!mask || mask.length !== 4) throw new Error("DHCP option Subnet Mask not found in DHCPACK");
  const prefix = maskToPrefix(`${mask[0]}.${mask[1]}.${mask[2]}.${mask[3]}`);
  const gateway = ipListOption(ack, Option.Router)[0];
  const ip: IPConfig = { address: `${ack.yiaddr}/${prefix}`, ...(gateway ? { gateway } : {}) };
  const routes: Route[] = [];
  const classless = ack.options.get(Option.ClasslessStaticRoute);
  if (classless?.length) {
    // RFC 3442: with option 121 present, option 33 and the router option are not routes.
    for (const r of classlessRoutes(classless))
      routes.push(r.gw === "0.0.0.0" ? { dst: r.dst, scope: 253 } : { dst: r.dst, gw: r.gw });
  } else {
    const statics = ack.options.get(Option.StaticRoute);
    if (statics) routes.push(...staticRoutes(statics));
    if (gateway) routes.push({ dst: "0.0.0.0/0", gw: gateway });
  }
  if (priority) for (const r of routes) r.priority = priority;
  return { cniVersion: "1.1.0", ips: [ip], routes, dns: {} };
}

export class Lease {
  ack: DhcpMessage | undefined;
  times: LeaseTimes | undefined;
  private startedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Every exchange of this lease runs after the previous one (renewal vs release). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly p: LeaseParams,
    private readonly run: ExchangeRunner,
  ) {}

  get server(): string | undefined {
    const s = this.ack?.options.get(Option.ServerId);
    return s ? `${s[0]}.${s[1]}.${s[2]}.${s[3]}` : undefined;
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.queue.then(f, f);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private request(kind: ExchangeKind): ExchangeRequest {
    return {
      kind,
      ifname: this.p.ifname,
      clientId: Buffer.concat([Buffer.from([0]), Buffer.from(this.p.clientId)]).toString("hex"),
      options: this.p.options,
      ...(this.ack ? { address: this.ack.yiaddr, server: this.server } : {}),
      timeoutMs: this.p.timeoutMs,
      deadlineMs: this.p.deadlineMs,
      resendMaxMs: this.p.resendMaxMs,
      broadcast: this.p.broadcast,
    };
  }

  private commit(r: ExchangeResponse & { ok: true }): void {
    this.ack = decode(Buffer.from(r.ack!, "hex"));
    this.startedAt = r.startedAt;
    this.times = leaseTimes(this.ack, r.startedAt);
    this.p.changed?.();
  }

  snapshot(): StoredLease | undefined {
    if (!this.ack || this.stopped) return undefined;
    const { clientId, network, containerId, ifname, netns, options } = this.p;
    return {
      clientId,
      network,
      containerId,
      ifname,
      netns,
      options,
      ack: encode(this.ack).toString("hex"),
      startedAt: this.startedAt,
    };
  }

  /** A lease of an earlier daemon, maintained from where it was (renewed now if T1 has passed). */
  static restore(stored: StoredLease, p: LeaseParams, run: ExchangeRunner): Lease {
    const l = new Lease(p, run);
    l.ack = decode(Buffer.from(stored.ack, "hex"));
    l.startedAt = stored.startedAt;
    l.times = leaseTimes(l.ack, stored.startedAt);
    l.schedule();
    return l;
  }

  /** DISCOVER → OFFER → REQUEST → ACK; rejects with the helper's message. */
  acquire(): Promise<void> {
    return this.serial(async () => {
      const r = await this.run(this.p.netns, this.request("acquire"));
      if (!r.ok) throw new Error(r.error);
      this.commit(r);
      this.p.log(
        `${this.p.clientId}: lease acquired ${this.ack!.yiaddr}, expires ${new Date(this.times!.expireAt).toISOString()}`,
      );
      this.schedule();
    });
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (this.stopped || !this.times) return;
    const now = Date.now();
    const t = this.times;
    const [at, kind]: [number, ExchangeKind | "expire"] =
      now < t.renewAt
        ? [t.renewAt, "renew"]
        : now < t.rebindAt
          ? [now, "renew"]
          : now < t.expireAt
            ? [now, "rebind"]
            : [now, "expire"];
    this.timer = setTimeout(() => void this.step(kind), Math.max(at - now, 0));
    this.timer.unref?.();
  }

  private async step(kind: ExchangeKind | "expire"): Promise<void> {
    if (this.stopped) return;
    if (kind === "expire") {
      this.p.log(`${this.p.clientId}: lease expired, bringing interface ${this.p.ifname} down`);
      this.stopped = true;
      this.p.changed?.();
      await this.serial(() => this.run(this.p.netns, this.request("down"))).catch(() => undefined);
      return;
    }
    const r = await this.serial(() => this.run(this.p.netns, this.request(kind)));
    if (this.stopped) return;
    if (r.ok) {
      this.commit(r);
      this.p.log(
        `${this.p.clientId}: lease ${kind === "renew" ? "renewed" : "rebound"}, expires ${new Date(this.times!.expireAt).toISOString()}`,
      );
      this.schedule();
      return;
    }
    if ("gone" in r && r.gone) {
      this.p.log(`${this.p.clientId}: ${r.error}; lease maintenance ends`);
      this.stopped = true;
      this.p.changed?.();
      return;
    }
    this.p.log(`${this.p.clientId}: ${kind} failed: ${r.error}`);
    const t = this.times!;
    const stageEnd = Date.now() < t.rebindAt ? t.rebindAt : t.expireAt;
    const retryIn = Math.max((stageEnd - Date.now()) / 2, 1000);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.schedule(), Math.min(retryIn, Math.max(stageEnd - Date.now(), 0)));
    this.timer.unref?.();
  }

  /** Ends maintenance and sends DHCPRELEASE (best effort: a vanished namespace has nothing to release). */
  release(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    return this.serial(async () => {
      if (!this.ack) return;
      const r = await this.run(this.p.netns, this.request("release"));
      if (!r.ok) this.p.log(`${this.p.clientId}: failed to release DHCP lease: ${r.error}`);
      else this.p.log(`${this.p.clientId}: lease released`);
    });
  }

  get expired(): boolean {
    return this.stopped || !this.times || Date.now() >= this.times.expireAt;
  }
}
