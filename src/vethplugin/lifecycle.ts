/**
 * What every veth plugin (bridge, ptp) does the same way, composed by their mains the way
 * upstream's ptp.go composes pkg/ip and pkg/ipam: ADD's frame (IPAM, then the links, undone on
 * failure), DEL, CHECK, STATUS and GC. A main only says what differs: its links and its
 * firewall plan.
 */
import {
  CniError,
  ErrorCode,
  delegateIpam,
  requirePrevResult,
  runTeardown,
  type CmdArgs,
  type GcArgs,
  type Result,
} from "../cni/index.js";
import { familyOf } from "../address/index.js";
import { IpError } from "../iproute2/ip.js";
import { ensureSysctl } from "../iproute2/sysctl.js";
import {
  deleteContainerLinkIfPresent,
  deleteHostLink,
  missingContainerAddresses,
  randomVethName,
  validNetnsPath,
} from "../iproute2/veth.js";
import { attachmentOf } from "../cni/attachment.js";
import { systemHost } from "../hoststate/index.js";
import { chooseFramework } from "../framework/index.js";
import {
  checkVethState,
  chooseVethBackend,
  gcVethState,
  removeVethState,
  setUpVethState,
  vethStateStatus,
  type VethStatePlan,
  type VethStateWant,
} from "../link/veth_state.js";

export type { VethStatePlan, VethStateWant };

type Args = CmdArgs<{ name: string; ipam?: { type?: string } }>;

/** CNI_NETNS goes into `ip` lines and nsenter arguments: refused unless it is a plain path. */
export function requireUsableNetns(args: { netns: string }): void {
  if (args.netns && !validNetnsPath(args.netns))
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `CNI_NETNS ${JSON.stringify(args.netns)} is not a usable path`,
    );
}

/**
 * What ADD's body gets: the host veth's name (chosen before anything exists), IPAM's answer and
 * the masquerade backend chosen before anything changed.
 */
export interface AddContext {
  hostVeth: string;
  ipam?: Result;
  masqBackend?: "iptables" | "nftables";
}

/**
 * ADD's frame: the backend choice (a host that cannot serve it refuses with code 50), then IPAM
 * (when `ipam`), so a refusal changes no link; then `body`. Any failure of the body deletes the
 * host veth (its container peer goes with it) and releases the address.
 */
export async function addAttachment(
  args: Args,
  opts: { ipam: boolean; hostState: VethStateWant },
  body: (ctx: AddContext) => Promise<Result>,
): Promise<Result> {
  const masqBackend = chooseVethBackend(args.config.name, opts.hostState);
  const ipam = opts.ipam ? await delegateIpam(args) : undefined;
  const hostVeth = randomVethName();
  try {
    return await body({ hostVeth, ...(ipam ? { ipam } : {}), masqBackend });
  } catch (e) {
    await deleteHostLink(hostVeth).catch(() => undefined);
    if (opts.ipam) await delegateIpam(args, "DEL").catch(() => undefined);
    throw e instanceof IpError ? new CniError(ErrorCode.Internal, e.message, "", { cause: e }) : e;
  }
}

/** IP forwarding on the host for every family the attachment has an address of. */
export function enableForwarding(ips: ReadonlyArray<{ address: string }>): void {
  for (const ip of ips)
    ensureSysctl(familyOf(ip.address) === 6 ? "net/ipv6/conf/all/forwarding" : "net/ipv4/ip_forward", "1");
}

/** ADD's last step: masquerade and spoof check for the attachment (one nft run when both). */
export async function setUpHostState(args: Args, plan: VethStatePlan): Promise<void> {
  await setUpVethState(systemHost(), attachmentOf(args), plan);
}

/**
 * DEL: the container link, the IPAM reservation, masquerade and spoof check, every step run even
 * when another one fails, and every failure reported. (Upstream's bridge skips masquerade
 * teardown when the namespace is gone and leaks the rules; this does not.) The steps are
 * independent and run at once: the kernel's removal of the container's veth (about 20 ms) no
 * longer comes on top of the host state's removal. Upstream releases the address before it
 * deletes the link too.
 */
export async function delAttachment(
  args: Args,
  what: { ipam: boolean; ipMasq: boolean; spoof: boolean },
): Promise<void> {
  await runTeardown(
    [
      {
        what: `container link ${args.ifname}`,
        run: () => deleteContainerLinkIfPresent(args.netns, args.ifname),
      },
      ...(what.ipam ? [{ what: "IPAM reservation", run: () => delegateIpam(args) }] : []),
      {
        what: "host state",
        run: () =>
          removeVethState(systemHost(), attachmentOf(args), {
            ...what,
            // DEL with prevResult names its masquerade keys; without, the backends use their records.
            addresses: (args.prevResult?.ips ?? []).map((i) => i.address),
          }),
      },
    ],
    { atOnce: true },
  );
}

/**
 * CHECK: prevResult is required; IPAM's own CHECK; the container interface with every address of
 * prevResult; the firewall entries `firewall` derives from prevResult, on the backend ADD chose.
 */
export async function checkAttachment(
  args: Args,
  opts: { ipam: boolean; firewall: (prev: Result) => VethStatePlan },
): Promise<void> {
  const prev = requirePrevResult(args);
  if (opts.ipam) await delegateIpam(args);
  const addresses = (prev.ips ?? []).map((i) => i.address);
  const missing = [
    ...(await missingContainerAddresses(args.netns, args.ifname, addresses)),
    ...(await checkVethState(systemHost(), attachmentOf(args), chosen(args, opts.firewall(prev)))),
  ];
  if (missing.length) throw new CniError(ErrorCode.Internal, `missing: ${missing.join("; ")}`);
}

function chosen(args: Args, plan: VethStatePlan): VethStatePlan {
  return { ...plan, backend: chooseFramework(plan.backend, args.config.name) };
}

/** STATUS: `ip` and every backend an ADD would use usable (tools and kernel), and IPAM ready. */
export async function statusAttachment(args: Args, want: VethStateWant): Promise<void> {
  await vethStateStatus(args.config.name, want);
  if (args.config.ipam?.type) await delegateIpam(args);
}

/** GC: IPAM's GC, then firewall entries of attachments that are not valid. */
export async function gcAttachments(args: GcArgs<{ name: string; ipam?: { type?: string } }>): Promise<void> {
  if (args.config.ipam?.type) await delegateIpam(args);
  await gcVethState(systemHost(), args.config.name, args.validAttachments);
}
