/**
 * The portmap plugin: host ports forwarded to a container, chained after the plugin that gave the
 * container its addresses. Upstream's config and behaviour, with an iptables backend (upstream's
 * rules exactly) and an nftables backend whose cost does not grow with the number of containers
 * (docs/portmap.md). prevResult is passed through unchanged.
 */
import {
  CniError,
  ErrorCode,
  definePlugin,
  type CmdArgs,
  type Result,
  requirePrevResult,
} from "../../../src/cni/index.js";
import { systemRunner } from "../../../src/process/index.js";
import { ensureSysctl } from "../../../src/netlink/sysctl.js";
import { onPath } from "../../../src/iptables/iptables.js";
import { settle, systemTools } from "../../../src/hoststate/index.js";
import { IptablesPortMapper } from "./portmap_iptables.js";
import { NftablesPortMapper } from "./portmap_nftables.js";
import {
  parseConf,
  schema,
  type BackendName,
  type PortMapConf,
  type PortMapNetConf,
  type PortMapper,
} from "./config.js";

function mapper(name: BackendName): PortMapper {
  return name === "nftables" ? new NftablesPortMapper() : new IptablesPortMapper();
}

/** Backends whose tools exist: DEL and GC clean both, so a change of backend leaves nothing behind. */
function presentMappers(): PortMapper[] {
  const out: PortMapper[] = [];
  if (onPath("iptables-restore") || onPath("ip6tables-restore")) out.push(new IptablesPortMapper());
  if (onPath("nft")) out.push(new NftablesPortMapper());
  return out;
}

/** route_localnet on the interface that routes to the container, so 127.0.0.1 can be forwarded. */
async function enableLocalnet(address: string): Promise<void> {
  const res = await systemRunner.run({ argv: ["ip", "-j", "route", "get", address] });
  if (res.code !== 0) return;
  const dev = (JSON.parse(res.stdout) as Array<{ dev?: string }>)[0]?.dev;
  if (dev && /^[^/\s.][^/\s]{0,14}$/.test(dev)) ensureSysctl(`net/ipv4/conf/${dev}/route_localnet`, "1");
}

function prevResultOrFail(args: CmdArgs<PortMapNetConf>): Result {
  return requirePrevResult(args);
}

async function cmdAdd(args: CmdArgs<PortMapNetConf>): Promise<Result> {
  const conf = parseConf(args);
  const prev = prevResultOrFail(args);
  if (conf.mappings.length === 0 || conf.containers.length === 0) return prev;
  await mapper(conf.backend).forward(conf);
  const udp = conf.mappings.filter((m) => m.protocol === "udp").map((m) => m.hostPort);
  await settle(
    { udpPorts: udp },
    systemTools,
    conf.containers.map((c) => c.family),
  );
  const v4 = conf.containers.find((c) => c.family === 4);
  if (conf.snat && v4) await enableLocalnet(v4.address);
  return prev;
}

async function cmdDel(args: CmdArgs<PortMapNetConf>): Promise<void> {
  // Validates the config (a bad one is refused on DEL too), but DEL needs no prevResult.
  const conf = parseConf(args);
  const instance = { network: args.config.name, containerId: args.containerId, ifname: args.ifname };
  const removed = await Promise.all(presentMappers().map((m) => m.unforward(instance, conf)));
  await settle({ udpPorts: removed.flat() }, systemTools);
}

async function cmdCheck(args: CmdArgs<PortMapNetConf>): Promise<void> {
  const conf: PortMapConf = parseConf(args);
  requirePrevResult(args);
  if (conf.mappings.length === 0) return;
  const missing = await mapper(conf.backend).check(conf);
  if (missing.length) throw new CniError(ErrorCode.Internal, `portmap: missing ${missing.join("; ")}`);
}

export const plugin = definePlugin<PortMapNetConf>(
  {
    add: cmdAdd,
    del: cmdDel,
    check: cmdCheck,
    async gc(args) {
      const valid = args.validAttachments;
      await Promise.all(presentMappers().map((m) => m.gc(args.config.name, valid)));
    },
    status(args) {
      const backend = parseConf(args).backend;
      const need = backend === "nftables" ? ["nft"] : ["iptables-restore", "iptables-save"];
      const missing = need.filter((t) => !onPath(t));
      if (missing.length)
        return Promise.reject(
          new CniError(
            ErrorCode.PluginNotAvailable,
            `plugin not available: ${missing.join(", ")} not found in PATH`,
          ),
        );
      return Promise.resolve();
    },
  },
  { name: "portmap", config: schema },
);
