/**
 * `dhcp daemon`: keeps the DHCP leases of containers. Upstream's flags (Go flag syntax: -name
 * value, -name=value, --name): -socketpath (default /run/cni/dhcp.sock), -pidfile, -hostprefix
 * (prefix to the host's root, for a daemon in a container), -broadcast, -timeout (10s),
 * -resendmax (62s), -resendtimeout (208s). Socket activation (LISTEN_FDS=1) as upstream.
 *
 * Each exchange runs in a short helper process inside the container's namespace (exchange.ts);
 * exchanges of one namespace run one at a time (they share port 68 and the broadcast route).
 * Leases are also written to a state file (-statefile, default `<socketpath>.leases.json`; upstream
 * keeps them in memory only): a restarted daemon goes on renewing them, so a container's address
 * never lapses at the server because its daemon was restarted.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { dirname, isAbsolute, resolve } from "node:path";
import { CniError, ErrorCode, validateConfig } from "../../../src/cni/index.js";
import { systemRunner } from "../../../src/process/index.js";
import type { ExchangeRequest, ExchangeResponse } from "../../../src/dhcp/exchange.js";
import { DEFAULT_SOCKET, clientId, dhcpSchema, leaseOptions } from "./config.js";
import {
  Lease,
  leaseResult,
  type ExchangeRunner,
  type LeaseIdentity,
  type LeaseParams,
  type StoredLease,
} from "./lease.js";
import type { CallArgs, Method, Reply } from "./rpc.js";

export interface DaemonOptions {
  socketPath: string;
  pidfile: string;
  hostPrefix: string;
  broadcast: boolean;
  timeoutMs: number;
  resendMaxMs: number;
  resendTimeoutMs: number;
  /** Where leases are kept across restarts ("" for none); default `<socketpath>.leases.json`. */
  stateFile: string;
}

/** Go durations as upstream's flags take them: 10s, 1m30s, 500ms, 2h. */
export function parseDuration(s: string, flag: string): number {
  const units: Record<string, number> = {
    ns: 1e-6,
    us: 1e-3,
    µs: 1e-3,
    ms: 1,
    s: 1000,
    m: 60_000,
    h: 3_600_000,
  };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * units[m[2]!]!;
    matched = re.lastIndex;
  }
  if (s === "0") return 0;
  if (!s || matched !== s.length)
    throw new CniError(ErrorCode.InvalidEnvironment, `invalid value "${s}" for flag -${flag}: parse error`);
  return total;
}

export function parseDaemonFlags(argv: string[]): DaemonOptions {
  const o: DaemonOptions = {
    socketPath: DEFAULT_SOCKET,
    pidfile: "",
    hostPrefix: "",
    broadcast: false,
    timeoutMs: 10_000,
    resendMaxMs: 62_000,
    resendTimeoutMs: 208_000,
    stateFile: "",
  };
  let stateFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const m = /^--?([a-z]+)(?:=(.*))?$/.exec(argv[i]!);
    if (!m) throw new CniError(ErrorCode.InvalidEnvironment, `unexpected argument ${argv[i]}`);
    const [, name, inline] = m;
    if (name === "broadcast") {
      o.broadcast = inline === undefined ? true : inline === "true" || inline === "1";
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined)
      throw new CniError(ErrorCode.InvalidEnvironment, `flag needs an argument: -${name}`);
    if (name === "socketpath") o.socketPath = value;
    else if (name === "pidfile") o.pidfile = value;
    else if (name === "statefile") stateFile = value;
    else if (name === "hostprefix") o.hostPrefix = value;
    else if (name === "timeout") o.timeoutMs = parseDuration(value, name);
    else if (name === "resendmax") o.resendMaxMs = parseDuration(value, name);
    else if (name === "resendtimeout") o.resendTimeoutMs = parseDuration(value, name);
    else throw new CniError(ErrorCode.InvalidEnvironment, `flag provided but not defined: -${name}`);
  }
  o.stateFile = stateFile ?? `${o.hostPrefix}${o.socketPath}.leases.json`;
  if (o.pidfile && !isAbsolute(o.pidfile))
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `Error writing pidfile "${o.pidfile}": path not absolute`,
    );
  return o;
}

/** How to start this executable again: the compiled binary alone, or node with its script. */
function selfCommand(): string[] {
  // Under node argv[1] is the entry script; in a compiled Bun binary it is a path inside the
  // binary's embedded file system (/$bunfs/...), which existsSync also reports as present.
  const script = process.argv[1];
  return script && !script.startsWith("/$bunfs/") && /\.[cm]?js$/.test(script)
    ? [process.execPath, script]
    : [process.execPath];
}

/** Runs an exchange in `netns` (entered with nsenter), in a helper process of this executable. */
export const nsenterRunner: ExchangeRunner = async (netns, req) => {
  if (!existsSync(netns)) return { ok: false, gone: true, error: `network namespace ${netns} is gone` };
  try {
    const done = await systemRunner.run({
      argv: [...selfCommand(), "exchange"],
      netns,
      stdin: JSON.stringify(req satisfies ExchangeRequest),
      env: { ...process.env, CNI_NFT_PLUGIN: "dhcp", CNI_COMMAND: "" },
      // The helper gives up by itself at its deadline; this only bounds a hung process.
      timeoutMs: req.deadlineMs + 60_000,
    });
    try {
      return JSON.parse(done.stdout) as ExchangeResponse;
    } catch {
      return {
        ok: false,
        error: `DHCP helper failed (exit ${done.code}): ${done.stderr.trim() || done.stdout.trim()}`,
      };
    }
  } catch (e) {
    return { ok: false, error: `starting the DHCP helper: ${(e as Error).message}` };
  }
};

/** Exchanges of one namespace one at a time: they share port 68 and the broadcast route. */
function perNamespace(run: ExchangeRunner): ExchangeRunner {
  const queues = new Map<string, Promise<unknown>>();
  return (netns, req) => {
    const prev = queues.get(netns) ?? Promise.resolve();
    const next = prev.then(() => run(netns, req));
    const tail = next.catch(() => undefined);
    queues.set(netns, tail);
    void tail.then(() => queues.get(netns) === tail && queues.delete(netns));
    return next;
  };
}

export class DhcpDaemon {
  readonly leases = new Map<string, Lease>();
  private readonly pending = new Map<string, Promise<Lease>>();
  private readonly run: ExchangeRunner;

  constructor(
    private readonly o: DaemonOptions,
    run: ExchangeRunner = nsenterRunner,
    private readonly log: (msg: string) => void = (m) =>
      process.stderr.write(`${new Date().toISOString()} ${m}\n`),
  ) {
    this.run = perNamespace(run);
  }

  private parse(a: CallArgs) {
    const conf = validateConfig(dhcpSchema, JSON.parse(a.stdin) as unknown);
    const id = clientId(a.containerId, conf.name, a.ifname);
    return { conf, id };
  }

  async handle(method: Method, a: CallArgs): Promise<unknown> {
    if (method === "status") return { leases: this.leases.size };
    if (method === "gc") {
      const conf = validateConfig(dhcpSchema, JSON.parse(a.stdin) as unknown);
      const valid = new Set(
        (a.validAttachments ?? []).map((v) => clientId(v.containerID, conf.name, v.ifname)),
      );
      const stale = [...this.leases.entries()].filter(
        ([id, l]) => l.p.network === conf.name && !valid.has(id),
      );
      await Promise.all(stale.map(([id]) => this.release(id)));
      return { released: stale.map(([id]) => id) };
    }
    const { conf, id } = this.parse(a);
    if (method === "release") {
      await this.release(id);
      return {};
    }
    if (method === "check") {
      const l = this.leases.get(id);
      if (!l || l.expired) throw new CniError(ErrorCode.Internal, `no active DHCP lease for ${id}`);
      return {};
    }
    const lease = await this.allocate(id, conf, a);
    return leaseResult(lease.ack!, conf.ipam.priority);
  }

  private async release(id: string): Promise<void> {
    const l = this.leases.get(id);
    if (!l) return;
    this.leases.delete(id);
    this.persist();
    await l.release();
  }

  private allocate(id: string, conf: ReturnType<DhcpDaemon["parse"]>["conf"], a: CallArgs): Promise<Lease> {
    const have = this.leases.get(id);
    if (have && !have.expired && have.p.netns === this.o.hostPrefix + resolve(a.netns))
      return Promise.resolve(have);
    const inFlight = this.pending.get(id);
    if (inFlight) return inFlight;
    const lease = new Lease(
      this.params({
        clientId: id,
        network: conf.name,
        containerId: a.containerId,
        ifname: a.ifname,
        netns: this.o.hostPrefix + resolve(a.netns),
        options: leaseOptions(conf, a.args),
      }),
      this.run,
    );
    this.log(`${id}: acquiring lease`);
    const p = (async () => {
      if (have) await this.release(id);
      await lease.acquire();
      this.leases.set(id, lease);
      this.persist();
      return lease;
    })();
    this.pending.set(id, p);
    void p.then(
      () => this.pending.delete(id),
      () => this.pending.delete(id),
    );
    return p;
  }

  /** A lease's parameters: who it is for, and this daemon's timing and logging. */
  private params(who: LeaseIdentity): LeaseParams {
    return {
      ...who,
      timeoutMs: this.o.timeoutMs,
      deadlineMs: this.o.resendTimeoutMs,
      resendMaxMs: this.o.resendMaxMs,
      broadcast: this.o.broadcast,
      log: this.log,
      changed: () => this.persist(),
    };
  }

  /** Writes every live lease to the state file, atomically (write beside, rename). */
  persist(): void {
    if (!this.o.stateFile) return;
    const stored = [...this.leases.values()].map((l) => l.snapshot()).filter((s) => s !== undefined);
    const tmp = `${this.o.stateFile}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify({ version: 1, leases: stored }) + "\n", { mode: 0o600 });
      renameSync(tmp, this.o.stateFile);
    } catch (e) {
      this.log(`cannot write ${this.o.stateFile}: ${(e as Error).message}`);
    }
  }

  /**
   * Takes over the leases an earlier daemon kept (a restart or a crash): each is maintained from
   * its last ACK, so the server never sees a container's address lapse while the container runs.
   * Leases of namespaces that are gone are dropped.
   */
  restore(): void {
    if (!this.o.stateFile || !existsSync(this.o.stateFile)) return;
    let stored: StoredLease[] = [];
    try {
      stored = (JSON.parse(readFileSync(this.o.stateFile, "utf8")) as { leases: StoredLease[] }).leases ?? [];
    } catch (e) {
      this.log(`ignoring unreadable ${this.o.stateFile}: ${(e as Error).message}`);
    }
    for (const s of stored) {
      if (!existsSync(s.netns)) {
        this.log(`${s.clientId}: namespace ${s.netns} is gone; lease dropped`);
        continue;
      }
      const { clientId, network, containerId, ifname, netns, options } = s;
      const params = this.params({ clientId, network, containerId, ifname, netns, options });
      this.leases.set(s.clientId, Lease.restore(s, params, this.run));
      this.log(`${s.clientId}: lease restored`);
    }
    this.persist();
  }

  http(): ReturnType<typeof createServer> {
    return createServer((req: IncomingMessage, res: ServerResponse) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (d: string) => (body += d));
      req.on("end", () => {
        const reply = (r: Reply): void =>
          void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(r));
        const m = /^\/cni-nft\/dhcp\/v1\/(allocate|release|check|gc|status)$/.exec(req.url ?? "");
        if (req.method !== "POST" || !m) return void res.writeHead(404).end("not found\n");
        let args: CallArgs;
        try {
          args = JSON.parse(body) as CallArgs;
        } catch (e) {
          return reply({
            ok: false,
            code: ErrorCode.DecodingFailure,
            msg: `bad request: ${(e as Error).message}`,
          });
        }
        this.handle(m[1] as Method, args).then(
          (result) => reply({ ok: true, result }),
          (e: unknown) => {
            const err = CniError.from(e);
            reply({ ok: false, code: err.code, msg: err.message });
          },
        );
      });
    });
  }
}

/** True when something answers on the socket (a live daemon); a stale file is removed. */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((res) => {
    const c = createConnection(path);
    c.once("connect", () => {
      c.destroy();
      res(true);
    });
    c.once("error", () => res(false));
  });
}

export async function runDaemon(argv: string[]): Promise<void> {
  const o = parseDaemonFlags(argv);
  const socketPath = o.hostPrefix + o.socketPath;
  const daemon = new DhcpDaemon(o);
  const server = daemon.http();
  const listenFds = Number(process.env["LISTEN_FDS"] ?? 0);
  if (listenFds > 1) throw new Error(`Too many (${listenFds}) FDs passed through socket activation`);
  if (listenFds === 1) server.listen({ fd: 3 });
  else {
    mkdirSync(dirname(socketPath), { recursive: true, mode: 0o700 });
    if (existsSync(socketPath)) {
      if (await socketInUse(socketPath))
        throw new Error(`Error getting listener: ${socketPath}: a daemon is already listening`);
      rmSync(socketPath, { force: true });
    }
    await new Promise<void>((res, rej) => server.once("error", rej).listen(socketPath, res));
  }
  // Only the daemon that owns the socket writes the pidfile and takes the leases over.
  if (o.pidfile) writeFileSync(o.pidfile, String(process.pid));
  daemon.restore();
  const stop = (): void => {
    server.close();
    if (listenFds !== 1) rmSync(socketPath, { force: true });
    if (o.pidfile) rmSync(o.pidfile, { force: true });
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  await new Promise<void>((res) => server.once("close", res));
}
