/**
 * What the firewall plugin's backends share: the parsed config and the specs they take (the
 * attachment's accept rules; the bridge's isolation). Every backend implements the host-state
 * contract (src/hoststate).
 */
import * as v from "valibot";
import type { Attachment } from "../../../src/cni/attachment.js";
import { CniError, ErrorCode, netConf, type CmdArgs, type Result } from "../../../src/cni/index.js";
import { familyOf, hostPrefix } from "../../../src/address/index.js";
import { validateName } from "../../../src/nftables/index.js";

export type BackendName = "iptables" | "firewalld" | "nftables";
export type IngressPolicy = "open" | "same-bridge" | "isolated";

/** iptables chain names: at most 28 bytes, no blanks, not an option or a target keyword. */
/**
 * Names the admin chain must not have: the plugin jumps to it from CNI-FORWARD, so a built-in
 * chain, a target or one of its own chains would be a loop or a verdict for every packet
 * (upstream accepts them all).
 */
const RESERVED_CHAIN_NAMES = new Set([
  ...["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"],
  ...["ACCEPT", "DROP", "RETURN", "REJECT", "QUEUE", "NFQUEUE", "LOG", "MARK", "CONNMARK", "JUMP", "GOTO"],
  ...["MASQUERADE", "DNAT", "SNAT", "REDIRECT", "CT", "NOTRACK", "TRACE"],
  ...["CNI-FORWARD", "CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2"],
  ...["CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SNAT"],
]);

const chainName = v.pipe(
  v.string(),
  v.regex(
    /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,27}$/,
    "must be an iptables chain name (up to 28 of A-Z a-z 0-9 _ . + -)",
  ),
  v.check(
    (name) => !RESERVED_CHAIN_NAMES.has(name.toUpperCase()),
    "must name a chain of your own: not a built-in chain (INPUT, FORWARD, ...), a target (ACCEPT, DROP, ...) or one of the plugin's chains (CNI-FORWARD, ...)",
  ),
);

/**
 * Bit 12. Not 0x2000: upstream's portmap (and ours) masquerades every packet carrying 0x2000 in
 * POSTROUTING, which would then hit all accepted container traffic. kube-proxy uses 0x4000 and
 * 0x8000.
 */
export const DEFAULT_NFT_MARK = 0x1000;

/** An nftables table or chain name the operator gives: refused before it reaches nft. */
const nftName = v.pipe(
  v.string(),
  v.check((s) => {
    try {
      validateName("name", s);
      return true;
    } catch {
      return false;
    }
  }, "must be an nftables name (letters, digits and _ . / -, starting with a letter or _; not a keyword)"),
);

/** Tables of cni-nft and of upstream's nftables backends: never the host firewall's. */
const OWN_TABLE = /^(cni_nft_|cni_plugins_|cni_hostport$)/;

/** The opt-in way through a host forward policy that drops (docs/firewall.md, "hostForward"). */
export const hostForwardSchema = v.optional(
  v.strictObject({
    /** The host firewall's forward base chain (another table than cni-nft's). */
    nftables: v.optional(
      v.strictObject({
        family: v.picklist(["ip", "ip6", "inet"]),
        table: v.pipe(
          nftName,
          v.check(
            (t) => !OWN_TABLE.test(t),
            "is a table of cni-nft or of upstream's plugins; name the host firewall's own table",
          ),
        ),
        chain: nftName,
      }),
    ),
    /** iptables filter FORWARD with policy DROP (as Docker sets it). */
    iptables: v.optional(v.boolean(), false),
  }),
);
export type HostForward = NonNullable<v.InferOutput<typeof hostForwardSchema>>;

export const schema = netConf({
  /** "" or missing: firewalld when it is running, else iptables (nftables where iptables is missing). */
  backend: v.optional(v.picklist(["", "iptables", "firewalld", "nftables"]), ""),
  iptablesAdminChainName: v.optional(v.union([v.literal(""), chainName]), ""),
  firewalldZone: v.optional(v.string(), ""),
  ingressPolicy: v.optional(v.picklist(["", "open", "same-bridge", "isolated"]), ""),
  /** nftables backend: the packet mark bit(s) set on accepted container traffic (docs/firewall.md). */
  nftablesMark: v.optional(
    v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(0xffffffff)),
    DEFAULT_NFT_MARK,
  ),
  /** Accept the containers' traffic in the host's own dropping forward path (docs/firewall.md). */
  hostForward: hostForwardSchema,
});
export type FirewallNetConf = v.InferOutput<typeof schema>;

/** What one attachment needs let through: the backends' spec (src/hoststate). */
export interface FirewallSpec {
  /** The container's addresses as host prefixes, `10.88.0.5/32`, `fd00::5/128`, from prevResult. */
  addresses: string[];
  adminChain: string;
  zone: string;
  ingressPolicy: IngressPolicy;
  /** The bridge (prevResult's first interface) for same-bridge and isolated. */
  bridge?: string;
  mark: number;
}

/** A spec with the attachment it is for. */
export type FirewallConf = Attachment & FirewallSpec;

/** Bridge isolation for same-bridge and isolated: the bridge's, kept when a container goes. */
export interface IsolationSpec {
  bridge: string;
  isolated: boolean;
  families: Array<4 | 6>;
  /** nftables: the accept mark of the table's forward rules. */
  mark: number;
}

/** The isolation an attachment's spec asks for, if any. */
export function isolationOf(spec: FirewallSpec): IsolationSpec | undefined {
  if (spec.ingressPolicy === "open" || !spec.bridge) return undefined;
  const families = ([4, 6] as const).filter((f) => spec.addresses.some((a) => familyOf(a) === f));
  return { bridge: spec.bridge, isolated: spec.ingressPolicy === "isolated", families, mark: spec.mark };
}

/** What the iptables and firewalld backends record before they write (src/hoststate/records.ts). */
export interface AddressRecord {
  addresses: string[];
  /** firewalld: the zone the addresses became sources of. */
  zone?: string;
}

/** A record's addresses (a record is a file: anything else in it counts for nothing). */
export function recordedAddresses(data: unknown): string[] {
  const list = (data as Partial<AddressRecord> | undefined)?.addresses;
  return Array.isArray(list) ? list.filter((x): x is string => typeof x === "string") : [];
}

/** Host prefixes (`10.88.0.5/32`) in the canonical form iptables-save prints, and their family. */
export { familyOf, hostPrefix } from "../../../src/address/index.js";

/** Linux interface names as they may appear in iptables and nft rules. */
export function validBridgeName(name: string): boolean {
  return /^[A-Za-z0-9_.:@+-]{1,15}$/.test(name) && name !== "." && name !== "..";
}

export function firewallSpec(args: CmdArgs<FirewallNetConf>, prev: Result | undefined): FirewallSpec {
  const c = args.config;
  const ingressPolicy: IngressPolicy = c.ingressPolicy === "" ? "open" : c.ingressPolicy;
  const conf: FirewallSpec = {
    addresses: (prev?.ips ?? []).map((ip) => hostPrefix(ip.address)),
    adminChain: c.iptablesAdminChainName || "CNI-ADMIN",
    zone: c.firewalldZone || "trusted",
    ingressPolicy,
    mark: c.nftablesMark,
  };
  const bridge = prev?.interfaces?.[0]?.name;
  if (bridge !== undefined) {
    if (!validBridgeName(bridge))
      throw new CniError(
        ErrorCode.InvalidNetworkConfig,
        `prevResult interface name ${JSON.stringify(bridge)} is not a valid interface name`,
      );
    conf.bridge = bridge;
  }
  return conf;
}
