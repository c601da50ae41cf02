/**
 * Everything a plugin could change, for before/after comparisons: links, addresses, routes and
 * rules (nft, iptables) of each namespace given, and the files under each directory given.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { firewallState } from "./cni.js";
import type { Netns, NetnsPool } from "./netns.js";

function files(dir: string, out: string[] = []): string[] {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      out.push(`${path}/`);
      files(path, out);
    } else out.push(`${path}: ${JSON.stringify(readFileSync(path, "utf8"))}`);
  }
  return out;
}

/** Links (with their details), addresses, routes and the ruleset of `ns`. */
export async function netnsState(ns: Netns): Promise<string> {
  const parts = await Promise.all([
    ns.sh(["ip", "-d", "link", "show"]),
    ns.sh(["ip", "addr", "show"]),
    ns.sh(["ip", "route", "show", "table", "all"]),
    ns.sh(["ip", "-6", "route", "show", "table", "all"]),
    firewallState(ns),
  ]);
  return stable(parts.join("\n---\n"));
}

/**
 * What the kernel changes on its own, after a plugin has finished: bridge timers, carrier
 * (LOWER_UP, NO-CARRIER, operational state), IPv6 link-local addresses and routes that come
 * and go with the carrier.
 */
function stable(text: string): string {
  return text
    .replace(/\b(\w+_timer)\s+[\d.]+/g, "$1 -")
    .replace(/(LOWER_UP|NO-CARRIER|M-DOWN),?/g, "")
    .replace(/,>/g, ">")
    .replace(/ linkdown/g, "")
    .replace(/ state (UP|DOWN|UNKNOWN|LOWERLAYERDOWN)/g, "")
    .split("\n")
    .filter((l) => !/fe80::|ff00::\/8|valid_lft|^\s*$/.test(l))
    .join("\n");
}

/** The plugins' per-attachment record directories of the namespace at `netns` (src/hoststate/records.ts). */
export function recordDirs(netns: string, root = "/run/cni-nft/records"): string[] {
  if (!existsSync(root)) return [];
  const ino = statSync(netns).ino;
  return readdirSync(root)
    .sort()
    .map((component) => join(root, component, `netns-${ino}`));
}

export async function hostState(namespaces: Netns[], dirs: string[] = []): Promise<string> {
  const ns = await Promise.all(namespaces.map(async (n) => `== ${n.name}\n${await netnsState(n)}`));
  return [...ns, ...dirs.map((d) => `== ${d}\n${files(d).join("\n")}`)].join("\n");
}

/** The lines only in `a` (-) and only in `b` (+): what changed, for an assertion message. */
export function stateDiff(a: string, b: string): string {
  const la = a.split("\n");
  const lb = b.split("\n");
  const sa = new Set(la);
  const sb = new Set(lb);
  return [
    ...la.filter((l) => !sb.has(l)).map((l) => `- ${l}`),
    ...lb.filter((l) => !sa.has(l)).map((l) => `+ ${l}`),
  ].join("\n");
}

/**
 * A host and a container namespace whose eth0 is a veth to the host (`peer` on the host side):
 * what meta plugins (tuning, portmap, firewall) find after a main plugin's ADD.
 */
export async function hostAndContainer(nets: NetnsPool, tag: string, peer: string): Promise<[Netns, Netns]> {
  const [host, container] = await Promise.all([nets.create(`${tag}h`), nets.create(`${tag}c`)]);
  await host.sh(["ip", "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", container.name]);
  return [host, container];
}
