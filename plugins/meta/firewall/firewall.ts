/**
 * The firewall plugin: lets a container's traffic through the host's forward path, chained after
 * the plugin that gave it its addresses (prevResult is passed through unchanged). Upstream's
 * config (backend, iptablesAdminChainName, firewalldZone, ingressPolicy) with three backends
 * behind one interface: iptables (upstream's rules exactly), firewalld (zone sources over D-Bus)
 * and nftables (cni-nft's own table). docs/firewall.md describes each and what an operator of
 * an nftables host firewall must add.
 */
import {
  CniError,
  ErrorCode,
  definePlugin,
  type CmdArgs,
  type Result,
  requirePrevResult,
} from "../../../src/cni/index.js";
import { onPath } from "../../../src/iptables/iptables.js";
import {
  familyOf,
  firewallConf,
  schema,
  type BackendName,
  type FirewallBackend,
  type FirewallConf,
  type FirewallNetConf,
} from "./firewall_backend.js";
import { IptablesFirewall } from "./firewall_iptables.js";
import { FirewalldFirewall, isFirewalldRunning } from "./firewall_firewalld.js";
import { NftablesFirewall } from "./firewall_nftables.js";

function backendOf(name: BackendName): FirewallBackend {
  if (name === "firewalld") return new FirewalldFirewall();
  if (name === "nftables") return new NftablesFirewall();
  return new IptablesFirewall();
}

/** Upstream's choice for an empty backend: firewalld when it runs, else iptables; nftables when only nft is there. */
async function chooseBackend(config: FirewallNetConf): Promise<BackendName> {
  if (config.backend) return config.backend;
  if (await isFirewalldRunning()) return "firewalld";
  if (!onPath("iptables-restore") && onPath("nft")) return "nftables";
  return "iptables";
}

function prevOrFail(args: CmdArgs<FirewallNetConf>): Result {
  return requirePrevResult(args);
}

function needBridge(conf: FirewallConf): void {
  if (conf.ingressPolicy !== "open" && !conf.bridge)
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `interface needs to be set for ingress policy "${conf.ingressPolicy}", make sure to chain "firewall" plugin with "bridge"`,
    );
}

/** firewalld has no notion of bridge isolation: as upstream, iptables does it (nftables without iptables). */
function isolationFor(conf: FirewallConf): IptablesFirewall | NftablesFirewall {
  return onPath(conf.addresses.some((a) => familyOf(a) === 6) ? "ip6tables-restore" : "iptables-restore") ||
    !onPath("nft")
    ? new IptablesFirewall()
    : new NftablesFirewall();
}

function families(conf: FirewallConf): Array<4 | 6> {
  return ([4, 6] as const).filter((f) => conf.addresses.some((a) => familyOf(a) === f));
}

function wrap(e: unknown): CniError {
  return e instanceof CniError ? e : new CniError(ErrorCode.Internal, (e as Error).message);
}

async function cmdAdd(args: CmdArgs<FirewallNetConf>): Promise<Result> {
  const prev = prevOrFail(args);
  const conf = firewallConf(args, prev);
  needBridge(conf);
  const name = await chooseBackend(args.config);
  try {
    await backendOf(name).add(conf);
    if (name === "firewalld" && conf.ingressPolicy !== "open" && conf.bridge)
      await isolationFor(conf).setupIsolation(
        conf.bridge,
        conf.ingressPolicy === "isolated",
        families(conf),
        conf.mark,
      );
  } catch (e) {
    throw wrap(e);
  }
  return prev;
}

/**
 * DEL needs no prevResult for the nftables backend (elements carry their owner); the iptables and
 * firewalld backends, like upstream's, remove the addresses prevResult names. Isolation rules stay
 * (upstream's choice too: the bridge may still have other containers). The nftables elements of
 * this container are removed whatever the backend, so a change of backend leaves nothing behind.
 */
async function cmdDel(args: CmdArgs<FirewallNetConf>): Promise<void> {
  const conf = firewallConf(args, args.prevResult);
  const name = await chooseBackend(args.config);
  try {
    await backendOf(name).del(conf);
    if (name !== "nftables" && onPath("nft")) await new NftablesFirewall().del(conf);
    if (name === "nftables" && conf.addresses.length && onPath("iptables-save"))
      await new IptablesFirewall().del(conf);
  } catch (e) {
    throw wrap(e);
  }
}

async function cmdCheck(args: CmdArgs<FirewallNetConf>): Promise<void> {
  const prev = prevOrFail(args);
  const conf = firewallConf(args, prev);
  needBridge(conf);
  const name = await chooseBackend(args.config);
  let missing: string[];
  try {
    missing = await backendOf(name).check(conf);
    if (name === "firewalld" && conf.ingressPolicy !== "open" && conf.bridge)
      missing.push(
        ...(await isolationFor(conf).checkIsolation(
          conf.bridge,
          conf.ingressPolicy === "isolated",
          families(conf),
        )),
      );
  } catch (e) {
    throw wrap(e);
  }
  if (missing.length)
    throw new CniError(ErrorCode.Internal, `firewall (${name}): missing ${missing.join("; ")}`);
}

export const plugin = definePlugin<FirewallNetConf>(
  {
    add: cmdAdd,
    del: cmdDel,
    check: cmdCheck,
    async gc(args) {
      // Only the nftables backend records owners; upstream's layouts cannot tell stale entries.
      if (!onPath("nft")) return;
      const valid = args.validAttachments;
      await new NftablesFirewall().gc(args.config.name, valid).catch((e: unknown) => {
        throw wrap(e);
      });
    },
    async status(args) {
      const name = await chooseBackend(args.config);
      const need = {
        iptables: ["iptables-restore", "iptables-save"],
        nftables: ["nft"],
        firewalld: ["dbus-send"],
      }[name];
      const missing = need.filter((t) => !onPath(t));
      if (missing.length)
        throw new CniError(
          ErrorCode.PluginNotAvailable,
          `plugin not available: ${missing.join(", ")} not found in PATH`,
        );
      if (name === "firewalld" && !(await isFirewalldRunning()))
        throw new CniError(ErrorCode.PluginNotAvailable, "plugin not available: firewalld is not running");
    },
  },
  // Every version: upstream refuses configs older than 0.4.0, but the multi-call VERSION answer is
  // shared by all plugins, and nothing here depends on the version.
  { name: "firewall", config: schema },
);
