/**
 * Everything a plugin could change, for before/after comparisons: links, addresses, routes and
 * rules (nft, iptables) of each namespace given, and the files under each directory given.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { firewallState } from "./cni.js";
import type { Netns } from "./netns.js";

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
  return parts.join("\n---\n");
}

export async function hostState(namespaces: Netns[], dirs: string[] = []): Promise<string> {
  const ns = await Promise.all(namespaces.map(async (n) => `== ${n.name}\n${await netnsState(n)}`));
  return [...ns, ...dirs.map((d) => `== ${d}\n${files(d).join("\n")}`)].join("\n");
}
