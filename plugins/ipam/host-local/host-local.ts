/**
 * host-local IPAM, drop-in compatible with upstream's (same config, same files on disk, same lock).
 * See docs/cni.md.
 */
import { readFile } from "node:fs/promises";
import {
  CniError,
  ErrorCode,
  definePlugin,
  formatIP,
  type DNS,
  type IP,
  type IPConfig,
  type Result,
} from "../../../src/cni/index.js";
import { allocate } from "./allocator.js";
import {
  hostLocalSchema,
  loadIpamConfig,
  rangeContains,
  rangeSetContains,
  rangeSetString,
  type HostLocalConf,
} from "./config.js";
import { Store } from "./store.js";

export async function parseResolvConf(path: string): Promise<DNS> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new CniError(ErrorCode.IOFailure, `cannot read resolvConf ${path}`, (e as Error).message);
  }
  const dns: DNS = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const f = line.split(/\s+/);
    if (f.length < 2) continue;
    switch (f[0]) {
      case "nameserver":
        (dns.nameservers ??= []).push(f[1]!);
        break;
      case "domain":
        dns.domain = f[1]!;
        break;
      case "search":
        (dns.search ??= []).push(...f.slice(1));
        break;
      case "options":
        (dns.options ??= []).push(...f.slice(1));
        break;
    }
  }
  return dns;
}

export const plugin = definePlugin<HostLocalConf>(
  {
    async add(args) {
      const conf = loadIpamConfig(args.config, args.args);
      const result: Result = { cniVersion: args.cniVersion };
      if (conf.resolvConf) result.dns = await parseResolvConf(conf.resolvConf);
      const store = new Store(conf.name, conf.dataDir);
      const ips: IPConfig[] = await store.locked(() => {
        const pending = new Map<string, IP>(conf.ipArgs.map((ip) => [formatIP(ip), ip]));
        const out: IPConfig[] = [];
        try {
          conf.ranges.forEach((set, idx) => {
            let req: IP | undefined;
            for (const [k, ip] of pending) {
              if (rangeSetContains(set, ip)) {
                req = ip;
                pending.delete(k);
                break;
              }
            }
            try {
              out.push(allocate(store, set, idx, args.containerId, args.ifname, req));
            } catch (e) {
              throw new CniError(
                ErrorCode.Internal,
                `failed to allocate for range ${idx}: ${(e as Error).message}`,
              );
            }
          });
          if (pending.size) {
            throw new CniError(
              ErrorCode.Internal,
              `failed to allocate all requested IPs: ${[...pending.keys()].join(" ")}`,
            );
          }
        } catch (e) {
          if (out.length) store.releaseByID(args.containerId, args.ifname);
          throw e;
        }
        return out;
      });
      result.ips = ips;
      if (conf.routes.length) result.routes = conf.routes;
      return result;
    },

    async del(args) {
      const conf = loadIpamConfig(args.config, args.args);
      const store = new Store(conf.name, conf.dataDir);
      // Upstream releases once per range set; one release covers every file of the attachment.
      await store.locked(() => store.releaseByID(args.containerId, args.ifname));
    },

    async check(args) {
      const conf = loadIpamConfig(args.config, args.args);
      const store = new Store(conf.name, conf.dataDir);
      const found = await store.locked(() => store.findByID(args.containerId, args.ifname));
      if (!found) {
        throw new CniError(
          ErrorCode.Internal,
          `host-local: Failed to find address added by container ${args.containerId}`,
        );
      }
    },

    async gc(args) {
      const conf = loadIpamConfig(args.config, args.args);
      const store = new Store(conf.name, conf.dataDir);
      const valid = new Set(args.validAttachments.map((a) => `${a.containerId}\n${a.ifname}`));
      const validIds = new Set(args.validAttachments.map((a) => a.containerId));
      await store.locked(() => {
        for (const r of store.reservations()) {
          const keep = r.ifname === undefined ? validIds.has(r.id) : valid.has(`${r.id}\n${r.ifname}`);
          if (!keep) store.remove(r.path);
        }
        for (const path of store.unfinished()) store.remove(path);
      });
    },

    /**
     * Not ready when a range set has no free address left (an ADD would fail): code 50, "cannot
     * service ADD requests". Counted without the lock: STATUS is advice, not a reservation.
     */
    async status(args) {
      const conf = loadIpamConfig(args.config, args.args);
      const reserved = new Store(conf.name, conf.dataDir).reservations().map((r) => r.ip);
      conf.ranges.forEach((set, idx) => {
        let size = 0n;
        for (const r of set)
          size += r.rangeEnd.value - r.rangeStart.value + 1n - (rangeContains(r, r.gateway) ? 1n : 0n);
        const used = BigInt(reserved.filter((ip) => rangeSetContains(set, ip)).length);
        if (used >= size)
          throw new CniError(
            ErrorCode.PluginNotAvailable,
            `host-local: no IP addresses available in range set ${idx} (${rangeSetString(set)}): all ${size} reserved; widen the range or remove stale reservations (cni-nft gc)`,
          );
      });
      return Promise.resolve();
    },
  },
  { name: "host-local", config: hostLocalSchema, knownArgs: ["IP"] },
);
