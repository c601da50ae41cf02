/**
 * Which firewall framework a plugin writes to when its config names none: the network's record
 * (written by `cni-nft migrate`), else the host's default as upstream decides it (iptables,
 * unless only nft is there). A host with neither cannot serve ADD: `requireFramework` refuses it
 * before anything is changed. DEL, CHECK and GC never need this: they look at every framework
 * present.
 */
import { CniError, ErrorCode } from "../cni/index.js";
import { onPath } from "../iptables/iptables.js";
import { readNetworkRecord } from "./record.js";

export type Framework = "iptables" | "nftables";

/** The tools each framework needs on PATH. */
export const FRAMEWORK_TOOLS: Record<Framework, readonly string[]> = {
  iptables: ["iptables-restore", "iptables-save"],
  nftables: ["nft"],
};

export function frameworkPresent(f: Framework): boolean {
  return FRAMEWORK_TOOLS[f].every(onPath);
}

/** Upstream's rule: iptables unless it is missing and nft is there. */
export function hostDefaultFramework(): Framework {
  return !frameworkPresent("iptables") && frameworkPresent("nftables") ? "nftables" : "iptables";
}

/** The configured framework, else the network's recorded one, else the host's default. */
export function chooseFramework(configured: Framework | undefined, network: string): Framework {
  return configured ?? readNetworkRecord(network)?.backend ?? hostDefaultFramework();
}

/** Fails (code 50, before any change) unless the framework's tools are on PATH. */
export function requireFramework(f: Framework, what: string): void {
  const missing = FRAMEWORK_TOOLS[f].filter((t) => !onPath(t));
  if (missing.length === 0) return;
  const neither = !frameworkPresent("iptables") && !frameworkPresent("nftables");
  throw new CniError(
    ErrorCode.PluginNotAvailable,
    neither
      ? `${what}: neither nftables (nft) nor iptables (iptables-restore, iptables-save) is installed: install the nftables or the iptables package`
      : `${what}: the ${f} backend needs ${missing.join(", ")}, not found in PATH (install ${f} or choose the other backend)`,
  );
}
