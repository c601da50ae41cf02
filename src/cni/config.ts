/**
 * Network configuration schemas (valibot) and validation. Every plugin's schema extends
 * `netConfEntries`; `netConf({...})` builds one. Unknown keys are kept (loose objects), as the
 * spec requires plugins to ignore fields they do not know.
 */
import * as v from "valibot";
import { CniError, ErrorCode } from "./errors.js";
import { isCIDR, isIP, isMac } from "../address/index.js";

/** A string holding an IP address. */
export const ipString = v.pipe(
  v.string(),
  v.check((s) => isIP(s), "must be an IP address"),
);
/** A string holding a CIDR ("10.0.0.0/24"; host bits allowed). */
export const cidrString = v.pipe(
  v.string(),
  v.check((s) => isCIDR(s), "must be a CIDR such as 10.0.0.0/24"),
);
/** An IP address with or without a prefix length (runtimeConfig.ips, args.cni.ips). */
export const ipOrCidrString = v.pipe(
  v.string(),
  v.check((s) => isIP(s) || isCIDR(s), "must be an IP address or CIDR"),
);
export const macString = v.pipe(
  v.string(),
  v.check(isMac, "must be a MAC address such as 0a:58:0a:00:00:01"),
);
/**
 * A directory a plugin keeps state in (host-local's and tuning's `dataDir`): an absolute path, or
 * empty for the plugin's default. Upstream accepts a relative one and resolves it against the
 * runtime's working directory (libcni starts plugins in its own): podman's is the shell's, so the
 * same network would get one store per directory podman was run from (the same address handed
 * out twice, a DEL from elsewhere freeing nothing). docs/reliability.md.
 */
export const stateDirString = v.pipe(
  v.string(),
  v.check(
    (s) => s === "" || s.startsWith("/"),
    "must be an absolute path (a relative one would depend on the runtime's working directory)",
  ),
);
const portNumber = v.pipe(
  v.number(),
  v.integer("must be an integer"),
  v.minValue(0, "must be 0..65535"),
  v.maxValue(65535, "must be 0..65535"),
);
const uint = v.pipe(v.number(), v.integer("must be an integer"), v.minValue(0, "must not be negative"));

export const dnsSchema = v.looseObject({
  nameservers: v.optional(v.array(v.string())),
  domain: v.optional(v.string()),
  search: v.optional(v.array(v.string())),
  options: v.optional(v.array(v.string())),
});

export const routeSchema = v.looseObject({
  dst: cidrString,
  gw: v.optional(ipString),
  mtu: v.optional(uint),
  advmss: v.optional(uint),
  priority: v.optional(uint),
  table: v.optional(uint),
  scope: v.optional(uint),
});

export const ipRangeSchema = v.looseObject({
  subnet: cidrString,
  rangeStart: v.optional(ipString),
  rangeEnd: v.optional(ipString),
  gateway: v.optional(ipString),
});

export const portMappingSchema = v.looseObject({
  hostPort: portNumber,
  containerPort: portNumber,
  protocol: v.optional(v.string()),
  hostIP: v.optional(v.string()),
});

export const runtimeConfigSchema = v.looseObject({
  portMappings: v.optional(v.array(portMappingSchema)),
  ips: v.optional(v.array(ipOrCidrString)),
  mac: v.optional(macString),
  ipRanges: v.optional(v.array(v.array(ipRangeSchema))),
  bandwidth: v.optional(
    v.looseObject({
      ingressRate: v.optional(uint),
      ingressBurst: v.optional(uint),
      egressRate: v.optional(uint),
      egressBurst: v.optional(uint),
    }),
  ),
  dns: v.optional(
    v.looseObject({
      servers: v.optional(v.array(v.string())),
      searches: v.optional(v.array(v.string())),
      options: v.optional(v.array(v.string())),
    }),
  ),
});

export const argsSchema = v.looseObject({
  cni: v.optional(
    v.looseObject({
      ips: v.optional(v.array(ipOrCidrString)),
      labels: v.optional(v.array(v.looseObject({ key: v.string(), value: v.string() }))),
    }),
  ),
});

/** Keys every network configuration may have. */
export const netConfEntries = {
  cniVersion: v.optional(v.string(), "0.1.0"),
  name: v.string(),
  type: v.optional(v.string(), ""),
  capabilities: v.optional(v.record(v.string(), v.boolean())),
  ipam: v.optional(
    v.looseObject({
      type: v.optional(v.pipe(v.string(), v.minLength(1, "must name the IPAM plugin, e.g. host-local"))),
    }),
  ),
  dns: v.optional(dnsSchema),
  args: v.optional(argsSchema),
  runtimeConfig: v.optional(runtimeConfigSchema),
  prevResult: v.optional(v.unknown()),
  "cni.dev/valid-attachments": v.optional(
    v.array(v.looseObject({ containerID: v.string(), ifname: v.string() })),
  ),
};

/** A loose object schema with the common keys plus the plugin's own. */
export function netConf<const E extends v.ObjectEntries>(
  entries: E,
): v.LooseObjectSchema<Omit<typeof netConfEntries, keyof E> & E, undefined> {
  return v.looseObject({ ...netConfEntries, ...entries } as Omit<typeof netConfEntries, keyof E> & E);
}

/** The base network configuration schema (what a plugin without own keys validates against). */
export const baseNetConf = v.looseObject(netConfEntries);

export type AnySchema<T = unknown> = v.GenericSchema<unknown, T>;

function issuePath(issue: v.BaseIssue<unknown>): string {
  let out = "";
  for (const item of issue.path ?? []) {
    const k = item.key;
    if (typeof k === "number") out += `[${k}]`;
    else out += out === "" ? String(k) : `.${String(k)}`;
  }
  return out;
}

function issueText(issue: v.BaseIssue<unknown>): string {
  const path = issuePath(issue);
  let msg = issue.message;
  if (issue.kind === "schema" && issue.input === undefined)
    msg = `missing (expected ${issue.expected ?? "a value"})`;
  else if (issue.kind === "schema") msg = `expected ${issue.expected ?? "?"}, got ${issue.received}`;
  return path ? `${path}: ${msg}` : msg;
}

/**
 * Validates `raw` against `schema`. Failure throws CniError code 7 whose msg names the first bad
 * field and what is wrong, and whose details list every issue.
 */
export function validateConfig<T>(schema: AnySchema<T>, raw: unknown, what = "network config"): T {
  const input = withGoRuntimeConfigKeys(raw);
  const array = arrayForObject(schema, input, "");
  if (array !== undefined)
    throw new CniError(
      ErrorCode.InvalidNetworkConfig,
      `invalid ${what}: ${array}: expected an object, got an array`,
    );
  const r = v.safeParse(schema, input);
  if (r.success) return r.output;
  const texts = r.issues.map((i) => issueText(i));
  throw new CniError(ErrorCode.InvalidNetworkConfig, `invalid ${what}: ${texts[0]}`, texts.join("; "));
}

/** The field names of each capability's entries, as the CNI conventions spell them. */
const CAPABILITY_FIELDS: Record<string, readonly string[]> = {
  portMappings: ["hostPort", "containerPort", "protocol", "hostIP"],
  bandwidth: ["ingressRate", "ingressBurst", "egressRate", "egressBurst"],
  ipRanges: ["subnet", "rangeStart", "rangeEnd", "gateway"],
  dns: ["servers", "searches", "options"],
};

function canonicalKeys(entry: unknown, fields: readonly string[]): unknown {
  if (!entry || typeof entry !== "object" || Array.isArray(entry)) return entry;
  const obj = entry as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, val] of Object.entries(obj)) {
    const canonical: string = fields.find((f) => f.toLowerCase() === k.toLowerCase()) ?? k;
    if (canonical !== k && canonical in obj) continue; // an exact key wins, as in Go's encoding/json
    out[canonical] = val;
  }
  return out;
}

/**
 * runtimeConfig with capability field names matched case-insensitively, as Go's encoding/json
 * (upstream's plugins) matches them: containerd's go-cni marshals its PortMapping and BandWidth
 * structs without JSON tags, so kubelet's pods arrive with `{"HostPort": 8080, "ContainerPort": 80,
 * "Protocol": "tcp", "HostIP": ""}` and `{"IngressRate": ...}`.
 */
export function withGoRuntimeConfigKeys(raw: unknown): unknown {
  const rc = (raw as { runtimeConfig?: unknown } | null)?.runtimeConfig;
  if (!rc || typeof rc !== "object" || Array.isArray(rc)) return raw;
  const fixed: Record<string, unknown> = { ...(rc as Record<string, unknown>) };
  for (const [cap, fields] of Object.entries(CAPABILITY_FIELDS)) {
    const val = fixed[cap];
    if (cap === "portMappings" && Array.isArray(val))
      fixed[cap] = val.map((e: unknown) => canonicalKeys(e, fields));
    else if (cap === "ipRanges" && Array.isArray(val))
      fixed[cap] = val.map((set: unknown) =>
        Array.isArray(set) ? set.map((e: unknown) => canonicalKeys(e, fields)) : set,
      );
    else if (val !== undefined && !Array.isArray(val)) fixed[cap] = canonicalKeys(val, fields);
  }
  return { ...(raw as Record<string, unknown>), runtimeConfig: fixed };
}

interface SchemaNode {
  type: string;
  wrapped?: SchemaNode;
  entries?: Record<string, SchemaNode>;
  item?: SchemaNode;
  value?: SchemaNode;
}

/**
 * The path of the first array given where the schema expects an object (valibot's object
 * schemas accept arrays: `"ipam": []` would pass as an IPAM config with no keys), else undefined.
 */
function arrayForObject(schema: unknown, value: unknown, path: string): string | undefined {
  const node = schema as SchemaNode;
  if (value === undefined || value === null) return undefined;
  if (node.wrapped) return arrayForObject(node.wrapped, value, path);
  const at = (k: string | number): string =>
    typeof k === "number" ? `${path}[${k}]` : path === "" ? k : `${path}.${k}`;
  if (node.entries && /object$/.test(node.type)) {
    if (Array.isArray(value)) return path || "(top level)";
    if (typeof value !== "object") return undefined;
    for (const [k, sub] of Object.entries(node.entries)) {
      const found = arrayForObject(sub, (value as Record<string, unknown>)[k], at(k));
      if (found !== undefined) return found;
    }
  } else if (node.type === "array" && node.item && Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = arrayForObject(node.item, value[i] as unknown, at(i));
      if (found !== undefined) return found;
    }
  } else if (node.type === "record" && node.value && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, sub] of Object.entries(value as Record<string, unknown>)) {
      const found = arrayForObject(node.value, sub, at(k));
      if (found !== undefined) return found;
    }
  }
  return undefined;
}
