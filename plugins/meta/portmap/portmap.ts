/**
 * The portmap plugin: host ports forwarded to a container, chained after the plugin that gave the
 * container its addresses. Upstream's config and behaviour, with an iptables backend (upstream's
 * rules exactly) and an nftables backend whose cost does not grow with the number of containers
 * (docs/portmap.md). prevResult is passed through unchanged.
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
import { requireFramework, requireUsable } from "../../../src/framework/index.js";
import { systemRunner } from "../../../src/process/index.js";
import { bytesOf, parseIP } from "../../../src/address/index.js";
import { loadLibc } from "../../../src/ffi/libc.js";
import { routeDevice } from "../../../src/ffi/rtnetlink.js";
import { ensureSysctl } from "../../../src/iproute2/sysctl.js";
import {
  backendNamed,
  gcEverywhere,
  removeEverywhere,
  settle,
  systemHost,
  type Host,
} from "../../../src/hoststate/index.js";
import { portmapBackends } from "./backends.js";
import { parseConf, schema, type PortMapNetConf } from "./config.js";

/**
 * The device the kernel routes `address` through: asked over rtnetlink under Bun (the compiled
 * plugins, the resident daemon: no process), through `ip route get` otherwise or where netlink
 * cannot be opened. Undefined when there is no route.
 */
async function routeDeviceOf(address: string): Promise<string | undefined> {
  const libc = await loadLibc();
  const ip = parseIP(address);
  if (libc && ip) {
    try {
      return routeDevice(libc, bytesOf(ip));
    } catch {
      // no rtnetlink socket here: the command may still answer
    }
  }
  const res = await systemRunner.run({ argv: ["ip", "-j", "route", "get", address] });
  if (res.code !== 0) return undefined;
  return (JSON.parse(res.stdout) as Array<{ dev?: string }>)[0]?.dev;
}

/** route_localnet on the interface that routes to the container, so 127.0.0.1 can be forwarded. */
async function enableLocalnet(address: string): Promise<void> {
  const dev = await routeDeviceOf(address);
  if (dev && /^[^/\s.][^/\s]{0,14}$/.test(dev)) ensureSysctl(`net/ipv4/conf/${dev}/route_localnet`, "1");
}

async function cmdAdd(args: CmdArgs<PortMapNetConf>, host: Host = systemHost()): Promise<Result> {
  const { backend, spec } = parseConf(args, host.tools);
  const prev = requirePrevResult(args);
  if (spec.mappings.length === 0 || spec.containers.length === 0) return prev;
  requireFramework(backend, "portmap");
  const effects = await backendNamed(portmapBackends(host), backend).setUp(attachmentOf(args), spec);
  await settle(
    effects,
    host.tools,
    spec.containers.map((c) => c.family),
  );
  const v4 = spec.containers.find((c) => c.family === 4);
  if (spec.snat && v4) await enableLocalnet(v4.address);
  return prev;
}

/** Every backend present: a change of backend leaves nothing behind. DEL needs no prevResult. */
async function cmdDel(args: CmdArgs<PortMapNetConf>, host: Host = systemHost()): Promise<void> {
  // Validates the config (a bad one is refused on DEL too).
  const { spec } = parseConf(args, host.tools);
  await settle(await removeEverywhere(portmapBackends(host), attachmentOf(args), spec), host.tools);
}

async function cmdCheck(args: CmdArgs<PortMapNetConf>, host: Host = systemHost()): Promise<void> {
  const { backend, spec } = parseConf(args, host.tools);
  requirePrevResult(args);
  if (spec.mappings.length === 0) return;
  const missing = await backendNamed(portmapBackends(host), backend).check(attachmentOf(args), spec);
  if (missing.length) throw new CniError(ErrorCode.Internal, `portmap: missing ${missing.join("; ")}`);
}

export const plugin = definePlugin<PortMapNetConf>(
  {
    add: (args) => cmdAdd(args),
    del: (args) => cmdDel(args),
    check: (args) => cmdCheck(args),
    async gc(args) {
      // As before the contract: GC does not flush conntrack for what it removes.
      const host = systemHost();
      await gcEverywhere(portmapBackends(host), args.config.name, args.validAttachments);
    },
    async status(args) {
      const backend = parseConf(args, systemHost().tools).backend;
      requireFramework(backend, "portmap");
      await requireUsable(backend, "portmap");
    },
  },
  { name: "portmap", config: schema, answersWithPrevResult: true },
);
