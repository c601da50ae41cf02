/**
 * portmap's configuration: upstream's fields and defaults, the port mappings from
 * `runtimeConfig.portMappings`, the container addresses from `prevResult`, the backend choice,
 * and the checks that keep `conditionsV4/V6` to matches only.
 */
import * as v from "valibot";
import { CniError, ErrorCode, netConf, type CmdArgs } from "../../../src/cni/index.js";
import { formatIP, parseCIDR, parseIP, subnetOf } from "../../../src/address/index.js";
import { validateRuleText } from "../../../src/nftables/index.js";
import type { Attachment } from "../../../src/cni/attachment.js";
import { defaultBackend, systemTools, type HostTools } from "../../../src/hoststate/index.js";
import { readNetworkRecord } from "../../../src/framework/index.js";

export const schema = netConf({
  backend: v.optional(v.picklist(["iptables", "nftables"])),
  snat: v.optional(v.boolean(), true),
  masqAll: v.optional(v.boolean(), false),
  markMasqBit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(31))),
  externalSetMarkChain: v.optional(v.string()),
  conditionsV4: v.optional(v.nullable(v.array(v.string()))),
  conditionsV6: v.optional(v.nullable(v.array(v.string()))),
});
export type PortMapNetConf = v.InferOutput<typeof schema>;

export type Protocol = "tcp" | "udp" | "sctp";
export type BackendName = "iptables" | "nftables";
export type Family = 4 | 6;

export interface Mapping {
  hostPort: number;
  containerPort: number;
  protocol: Protocol;
  /** Canonical host address; undefined for none or an unspecified address (any local address). */
  hostIP?: string;
  /** Family of hostIP as given (also for 0.0.0.0 / ::); undefined when no hostIP. */
  hostFamily?: Family;
}

export interface ContainerAddr {
  family: Family;
  /** The container's address, canonical. */
  address: string;
  /** Its subnet, e.g. `10.88.0.0/24`. */
  subnet: string;
}

/** What one attachment maps: the backends' spec (src/hoststate). */
export interface PortMapSpec {
  snat: boolean;
  masqAll: boolean;
  markMasqBit: number;
  externalSetMarkChain?: string;
  conditionsV4: string[];
  conditionsV6: string[];
  mappings: Mapping[];
  containers: ContainerAddr[];
}

/** A spec with the attachment it is for, as the backends' helpers take it. */
export type PortMapConf = Attachment & PortMapSpec;

/** The mappings that apply to a container address of one family (as upstream: hostIP family must match). */
export function mappingsFor(c: PortMapSpec, family: Family): Mapping[] {
  return c.mappings.filter((m) => m.hostFamily === undefined || m.hostFamily === family);
}

const fail = (msg: string): never => {
  throw new CniError(ErrorCode.InvalidNetworkConfig, msg);
};

export function parseMappings(conf: PortMapNetConf): Mapping[] {
  const raw = conf.runtimeConfig?.portMappings ?? [];
  return raw.map((pm, i) => {
    const where = `runtimeConfig.portMappings[${i}]`;
    if (pm.containerPort <= 0) fail(`Invalid container port number: ${pm.containerPort} (${where})`);
    if (pm.hostPort <= 0) fail(`Invalid host port number: ${pm.hostPort} (${where})`);
    const protocol = (pm.protocol ?? "tcp").toLowerCase();
    if (protocol !== "tcp" && protocol !== "udp" && protocol !== "sctp")
      fail(`${where}.protocol: ${JSON.stringify(pm.protocol)} is not tcp, udp or sctp`);
    const m: Mapping = {
      hostPort: pm.hostPort,
      containerPort: pm.containerPort,
      protocol: protocol as Protocol,
    };
    if (pm.hostIP !== undefined && pm.hostIP !== "") {
      const ip = parseIP(pm.hostIP);
      if (!ip) return fail(`${where}.hostIP: ${JSON.stringify(pm.hostIP)} is not an IP address`);
      m.hostFamily = ip.family;
      if (ip.value !== 0n) m.hostIP = formatIP(ip);
    }
    return m;
  });
}

/** As upstream: the first address of each family on the sandbox interface named ifname. */
export function containerAddrs(args: CmdArgs<PortMapNetConf>): ContainerAddr[] {
  const prev = args.prevResult;
  const out: ContainerAddr[] = [];
  for (const ip of prev?.ips ?? []) {
    const c = parseCIDR(ip.address);
    if (!c) continue;
    if (out.some((o) => o.family === c.ip.family)) continue;
    if (ip.interface !== undefined && ip.interface >= 0 && ip.interface < (prev?.interfaces?.length ?? 0)) {
      const iface = prev!.interfaces![ip.interface]!;
      if (iface.name !== args.ifname || !iface.sandbox) continue;
    }
    out.push({ family: c.ip.family, address: formatIP(c.ip), subnet: subnetOf(ip.address) });
  }
  return out;
}

/** iptables or nftables syntax, as upstream guesses it: iptables conditions start with - or !. */
export function conditionsBackend(conds: string[] | null | undefined): BackendName | undefined {
  const first = conds?.[0];
  if (!conds || conds.length === 0 || first === undefined || first === "") return undefined;
  return first.startsWith("-") || first.startsWith("!") ? "iptables" : "nftables";
}

export function chooseBackend(c: PortMapNetConf, tools: HostTools = systemTools): BackendName {
  const wants: Record<BackendName, string[]> = { iptables: [], nftables: [] };
  if (c.externalSetMarkChain !== undefined) wants.iptables.push("externalSetMarkChain");
  const b4 = conditionsBackend(c.conditionsV4);
  if (b4) wants[b4].push("conditionsV4");
  const b6 = conditionsBackend(c.conditionsV6);
  if (b6) wants[b6].push("conditionsV6");
  const backend: BackendName = c.backend ?? readNetworkRecord(c.name)?.backend ?? defaultBackend(tools);
  const other: BackendName = backend === "iptables" ? "nftables" : "iptables";
  if (wants[other].length)
    fail(
      `${backend} backend was requested but configuration contains ${other}-specific options [${wants[other].join(" ")}]`,
    );
  return backend;
}

/** iptables options that end or replace the match part of a rule, or change another chain or table. */
const IPT_FORBIDDEN = new Set([
  "-A", "--append", "-C", "--check", "-D", "--delete", "-I", "--insert", "-R", "--replace",
  "-L", "--list", "-S", "--list-rules", "-F", "--flush", "-Z", "--zero", "-N", "--new-chain",
  "-X", "--delete-chain", "-P", "--policy", "-E", "--rename-chain", "-j", "--jump", "-g", "--goto",
  "-t", "--table", "-w", "--wait", "-W", "--wait-interval", "-c", "--set-counters", "-p", "--protocol",
  "--to-destination", "--to-source", "--to-ports", "--set-mark", "--set-xmark", "--modprobe",
]); // prettier-ignore
const IPT_SHORT_ALLOWED = new Set(["-s", "-d", "-i", "-o", "-m", "-f", "!"]);

/** iptables conditions: matches only, each token one argument (as upstream passes them). */
export function validateIptablesConditions(field: string, conds: string[]): string[] {
  for (const t of conds) {
    // eslint-disable-next-line no-control-regex
    if (t === "" || /["'\\\x00-\x1f\x7f]/.test(t))
      fail(`${field}: ${JSON.stringify(t)} is empty or contains a quote, backslash or control character`);
    if (IPT_FORBIDDEN.has(t))
      fail(`${field}: ${JSON.stringify(t)} is not a match option; conditions can only add matches`);
    if (/^-[^-]/.test(t) && !IPT_SHORT_ALLOWED.has(t))
      fail(
        `${field}: ${JSON.stringify(t)} is not an allowed option (use -s, -d, -i, -o, -m, ! or --long match options)`,
      );
    if (/^--[A-Za-z]+=/.test(t)) fail(`${field}: write ${JSON.stringify(t)} as two arguments`);
  }
  return conds;
}

/** nft words that are statements, verdicts or references rather than matches. */
const NFT_FORBIDDEN = new Set([
  "accept", "drop", "reject", "queue", "continue", "return", "jump", "goto", "counter", "log",
  "limit", "quota", "set", "add", "update", "delete", "notrack", "snat", "dnat", "masquerade",
  "redirect", "dup", "fwd", "tproxy", "synproxy", "flow", "meter", "comment", "vmap", "map", "to",
  "last", "secmark", "count", "monitor", "flowtable", "table", "chain", "rule", "element", "insert",
  "replace", "flush", "destroy", "reset", "list", "define", "include", "offload", "numgen", "objref",
]); // prettier-ignore

/** nft conditions: rule text made of matches only (no statement, verdict, reference or comment). */
export function validateNftConditions(field: string, conds: string[]): string[] {
  for (const c of conds) {
    try {
      validateRuleText(field, c);
    } catch (e) {
      fail(`${field}: ${(e as Error).message}`);
    }
    if (/[@$]/.test(c))
      fail(`${field}: ${JSON.stringify(c)} refers to a set or variable; conditions can only match`);
    for (const word of c.split(/[\s{},]+/)) {
      if (NFT_FORBIDDEN.has(word.toLowerCase()))
        fail(
          `${field}: ${JSON.stringify(word)} is a statement, not a match; conditions can only add matches`,
        );
    }
  }
  return conds;
}

/** The backend to use and the attachment's spec, or a CNI error naming the field. */
export function parseConf(
  args: CmdArgs<PortMapNetConf>,
  tools: HostTools = systemTools,
): { backend: BackendName; spec: PortMapSpec } {
  const c = args.config;
  if (c.markMasqBit !== undefined && c.externalSetMarkChain !== undefined)
    fail("Cannot specify externalSetMarkChain and markMasqBit");
  const backend = chooseBackend(c, tools);
  if (c.externalSetMarkChain !== undefined && !/^[A-Za-z0-9_.-]{1,28}$/.test(c.externalSetMarkChain))
    fail(`externalSetMarkChain: ${JSON.stringify(c.externalSetMarkChain)} is not an iptables chain name`);
  const validate = backend === "iptables" ? validateIptablesConditions : validateNftConditions;
  const spec: PortMapSpec = {
    snat: c.snat,
    masqAll: c.masqAll,
    markMasqBit: c.markMasqBit ?? 13,
    conditionsV4: validate(
      "conditionsV4",
      (c.conditionsV4 ?? []).filter((s) => s !== ""),
    ),
    conditionsV6: validate(
      "conditionsV6",
      (c.conditionsV6 ?? []).filter((s) => s !== ""),
    ),
    mappings: parseMappings(c),
    containers: containerAddrs(args),
  };
  if (c.externalSetMarkChain !== undefined) spec.externalSetMarkChain = c.externalSetMarkChain;
  return { backend, spec };
}

/** One lock for every change that reads before it writes, shared by both backends. */
export const LOCK_FILE = "/run/cni-nft-portmap.lock";
