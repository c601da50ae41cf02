/**
 * The firewall plugin: lets a container's traffic through the host's forward path, chained after
 * the plugin that gave it its addresses (prevResult is passed through unchanged). Upstream's
 * config (backend, iptablesAdminChainName, firewalldZone, ingressPolicy) with three backends
 * behind one interface: iptables (upstream's rules exactly), firewalld (zone sources over D-Bus)
 * and nftables (cni-nft's own table). docs/firewall.md describes each and what an operator of
 * an nftables host firewall must add, or `hostForward` adds for them (firewall_host_forward.ts).
 */
import {
  CniError,
  ErrorCode,
  attachmentOf,
  definePlugin,
  requirePrevResult,
  type CmdArgs,
  type Result,
} from "../../../src/cni/index.js";
import {
  backendNamed,
  chooseBackend,
  gcEverywhere,
  removeEverywhere,
  runEvery,
  systemHost,
  type BackendName,
  type Host,
} from "../../../src/hoststate/index.js";
import {
  firewallSpec,
  isolationOf,
  schema,
  type FirewallNetConf,
  type FirewallSpec,
  type IsolationSpec,
} from "./firewall_backend.js";
import { firewallBackends, isolationBackends } from "./backends.js";
import { RECORDS as FIREWALLD_RECORDS, isFirewalldRunning } from "./firewall_firewalld.js";
import { readNetworkRecord, requireFramework } from "../../../src/framework/index.js";
import { nftOwnerHash } from "../../../src/cni/attachment.js";

/**
 * Upstream's choice for an empty backend: firewalld when it runs, else the host's default. A
 * network moved by `cni-nft migrate` keeps its recorded framework (firewalld, a framework the
 * operator runs, still comes first).
 */
async function backendFor(config: FirewallNetConf, host: Host): Promise<BackendName> {
  const chosen = await chooseBackend(config.backend || undefined, host.tools, {
    firewalldRunning: isFirewalldRunning,
  });
  if (config.backend || chosen === "firewalld") return chosen;
  return readNetworkRecord(config.name)?.backend ?? chosen;
}

function needBridge(conf: FirewallSpec): void {
  if (conf.ingressPolicy !== "open" && !conf.bridge)
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `interface needs to be set for ingress policy "${conf.ingressPolicy}", make sure to chain "firewall" plugin with "bridge"`,
    );
}

/** firewalld has no notion of bridge isolation: as upstream, iptables does it (nftables without iptables). */
function isolationBackend(host: Host, s: IsolationSpec): ReturnType<typeof isolationBackends>[number] {
  const restore = s.families.includes(6) ? "ip6tables-restore" : "iptables-restore";
  const name = host.tools.has(restore) || !host.tools.has("nft") ? "iptables" : "nftables";
  return backendNamed(isolationBackends(host), name);
}

function partition<T>(xs: readonly T[], keep: (x: T) => boolean): [T[], T[]] {
  return [xs.filter(keep), xs.filter((x) => !keep(x))];
}

function wrap(e: unknown): CniError {
  return CniError.from(e);
}

async function cmdAdd(args: CmdArgs<FirewallNetConf>, host: Host = systemHost()): Promise<Result> {
  const prev = requirePrevResult(args);
  const spec = firewallSpec(args, prev);
  needBridge(spec);
  const name = await backendFor(args.config, host);
  if (name !== "firewalld") requireFramework(name, "firewall");
  const a = attachmentOf(args);
  try {
    await backendNamed(firewallBackends(host, args.config.hostForward), name).setUp(a, spec);
    const isolation = isolationOf(spec);
    if (name === "firewalld" && isolation) await isolationBackend(host, isolation).setUp(a, isolation);
  } catch (e) {
    throw wrap(e);
  }
  return prev;
}

/**
 * Every backend present, so a change of backend leaves nothing behind; firewalld only when it is
 * the one in use or it holds an intent record of the attachment (asking D-Bus whether it runs
 * costs a process). DEL needs no prevResult: nftables elements carry their owner, and the
 * iptables and firewalld backends remove the addresses prevResult or their intent record names
 * (upstream's need prevResult). Isolation stays (upstream's choice too: the bridge may still
 * have other containers).
 */
async function cmdDel(args: CmdArgs<FirewallNetConf>, host: Host = systemHost()): Promise<void> {
  const spec = firewallSpec(args, args.prevResult);
  const name = await backendFor(args.config, host);
  const a = attachmentOf(args);
  const [netfilter, firewalld] = partition(
    firewallBackends(host, args.config.hostForward),
    (b) => b.name !== "firewalld",
  );
  // firewalld's remove asks D-Bus only when there is a source to remove, and drops the record
  // even when firewalld is gone (its runtime sources went with it).
  const useFirewalld =
    name === "firewalld" || host.records(FIREWALLD_RECORDS).read(nftOwnerHash(a)) !== undefined;
  try {
    await runEvery([
      ["firewall (netfilter)", () => removeEverywhere(netfilter, a, spec)],
      ...(useFirewalld ? firewalld : []).map(
        (b) => ["firewall (firewalld)", () => b.remove(a, spec)] as const,
      ),
    ]);
  } catch (e) {
    throw wrap(e);
  }
}

async function cmdCheck(args: CmdArgs<FirewallNetConf>, host: Host = systemHost()): Promise<void> {
  const prev = requirePrevResult(args);
  const spec: FirewallSpec = firewallSpec(args, prev);
  needBridge(spec);
  const name = await backendFor(args.config, host);
  const a = attachmentOf(args);
  let missing: string[];
  try {
    missing = await backendNamed(firewallBackends(host, args.config.hostForward), name).check(a, spec);
    const isolation = isolationOf(spec);
    if (name === "firewalld" && isolation)
      missing.push(...(await isolationBackend(host, isolation).check(a, isolation)));
  } catch (e) {
    throw wrap(e);
  }
  if (missing.length)
    throw new CniError(ErrorCode.Internal, `firewall (${name}): missing ${missing.join("; ")}`);
}

export const plugin = definePlugin<FirewallNetConf>(
  {
    add: (args) => cmdAdd(args),
    del: (args) => cmdDel(args),
    check: (args) => cmdCheck(args),
    async gc(args) {
      // nftables elements carry their owner; iptables and firewalld work from their intent
      // records. firewalld's GC is not gated on firewalld running: without records it asks
      // nothing, and with firewalld gone its runtime sources are gone too (the records go).
      const host = systemHost();
      const [netfilter, firewalld] = partition(
        firewallBackends(host, args.config.hostForward),
        (b) => b.name !== "firewalld",
      );
      await runEvery([
        ["firewall (netfilter)", () => gcEverywhere(netfilter, args.config.name, args.validAttachments)],
        ...firewalld.map(
          (b) => ["firewall (firewalld)", () => b.gc(args.config.name, args.validAttachments)] as const,
        ),
      ]).catch((e: unknown) => {
        throw wrap(e);
      });
    },
    async status(args) {
      const host = systemHost();
      const name = await backendFor(args.config, host);
      const need = {
        iptables: ["iptables-restore", "iptables-save"],
        nftables: ["nft"],
        firewalld: ["dbus-send"],
      }[name];
      const missing = need.filter((t) => !host.tools.has(t));
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
  { name: "firewall", config: schema, answersWithPrevResult: true },
);
