/**
 * The node's pod subnet for a Kubernetes install: `spec.podCIDRs` (or `spec.podCIDR`) of the Node
 * object, read from the API server with the pod's service account (in-cluster config, as
 * client-go's rest.InClusterConfig reads it), and written into the conflist as host-local ranges.
 */
import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { CniError, ErrorCode, configError } from "../cni/errors.js";
import { formatCIDR, networkOf, parseCIDR, formatIP } from "../address/index.js";

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface KubeAccess {
  /** Base URL of the API server; default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT. */
  api?: string;
  tokenFile?: string;
  caFile?: string;
  env: Record<string, string | undefined>;
}

/** Validates pod CIDRs: network addresses, at most one per family. */
export function parsePodCidrs(list: string[], what: string): string[] {
  const seen = new Set<number>();
  return list.map((s) => {
    const c = parseCIDR(s.trim());
    if (!c) throw configError(`${what}: "${s}" is not a CIDR such as 10.244.1.0/24`);
    if (formatIP(networkOf(c)) !== formatIP(c.ip))
      throw configError(`${what}: "${s}" is not a network address (${formatIP(networkOf(c))}/${c.prefix})`);
    if (seen.has(c.ip.family)) throw configError(`${what}: more than one IPv${c.ip.family} CIDR`);
    seen.add(c.ip.family);
    return formatCIDR(c);
  });
}

function get(url: URL, headers: Record<string, string>, ca: Buffer | undefined): Promise<string> {
  const req = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const r = req(url, { headers, ...(ca ? { ca } : {}), timeout: 30_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () =>
        res.statusCode === 200
          ? resolve(body)
          : reject(new Error(`GET ${url.pathname}: HTTP ${res.statusCode}: ${body.slice(0, 300)}`)),
      );
    });
    r.on("timeout", () => r.destroy(new Error(`GET ${url.pathname}: no answer in 30 s`)));
    r.on("error", reject);
    r.end();
  });
}

/** spec.podCIDRs (dual-stack) or spec.podCIDR of node `name`. */
export async function nodePodCidrs(name: string, access: KubeAccess): Promise<string[]> {
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name))
    throw configError(`--pod-cidr-from-node: "${name}" is not a Kubernetes node name`);
  const host = access.env["KUBERNETES_SERVICE_HOST"];
  const port = access.env["KUBERNETES_SERVICE_PORT"] ?? "443";
  const base =
    access.api ?? (host ? `https://${host.includes(":") ? `[${host}]` : host}:${port}` : undefined);
  if (!base)
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      "--pod-cidr-from-node: not in a pod (KUBERNETES_SERVICE_HOST unset) and no --kube-api given",
    );
  const headers: Record<string, string> = { Accept: "application/json" };
  try {
    const token = readFileSync(access.tokenFile ?? `${SA_DIR}/token`, "utf8").trim();
    if (token) headers["Authorization"] = `Bearer ${token}`;
  } catch {
    if (!access.api)
      throw new CniError(ErrorCode.InvalidEnvironment, `no service account token in ${SA_DIR}`);
  }
  let ca: Buffer | undefined;
  try {
    ca = readFileSync(access.caFile ?? `${SA_DIR}/ca.crt`);
  } catch {
    ca = undefined;
  }
  let node: { spec?: { podCIDR?: string; podCIDRs?: string[] } };
  try {
    node = JSON.parse(await get(new URL(`/api/v1/nodes/${name}`, base), headers, ca)) as typeof node;
  } catch (e) {
    throw new CniError(ErrorCode.IOFailure, `reading node ${name} from ${base}: ${(e as Error).message}`);
  }
  const cidrs = node.spec?.podCIDRs?.length
    ? node.spec.podCIDRs
    : node.spec?.podCIDR
      ? [node.spec.podCIDR]
      : [];
  if (!cidrs.length)
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `node ${name} has no spec.podCIDR (the controller manager allocates them with --allocate-node-cidrs)`,
    );
  return parsePodCidrs(cidrs, `node ${name} spec.podCIDRs`);
}

type Json = Record<string, unknown>;

/**
 * Sets the ranges of every host-local IPAM in `conflist` that has none, one range set per CIDR.
 * A host-local that already names its subnet is an error: the pod CIDR would silently not apply.
 */
export function fillPodCidrs(conflist: Json, cidrs: string[], file: string): number {
  let filled = 0;
  const plugins = conflist["plugins"] as Json[];
  for (const [i, p] of plugins.entries()) {
    const ipam = p["ipam"] as Json | undefined;
    if (!ipam || ipam["type"] !== "host-local") continue;
    if (ipam["ranges"] !== undefined || ipam["subnet"] !== undefined)
      throw configError(
        `${file}: plugins[${i}].ipam already has ranges or a subnet; the pod CIDR fills a host-local without them`,
      );
    ipam["ranges"] = cidrs.map((subnet) => [{ subnet }]);
    filled++;
  }
  if (!filled) throw configError(`${file}: no host-local IPAM to give the pod CIDR to`);
  return filled;
}
