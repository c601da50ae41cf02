/** Running CNI plugins the way a runtime does: env + JSON on stdin, inside a "host" namespace. */
import { fileURLToPath } from "node:url";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Netns } from "./netns.js";

export const OUR_BIN = fileURLToPath(new URL("../../dist/bin", import.meta.url));
export const UPSTREAM_BIN = "/usr/lib/cni";

export interface CniCall {
  containerId: string;
  netns?: string;
  ifname?: string;
  args?: string;
  /** Directory of plugins; default ours. */
  bin?: string;
  /** CNI_PATH; default: bin. */
  path?: string;
}

export interface CniResult {
  code: number;
  stdout: string;
  stderr: string;
  json: Record<string, unknown> | undefined;
}

export async function cni(
  host: Netns,
  plugin: string,
  verb: string,
  conf: object,
  call: CniCall,
): Promise<CniResult> {
  const bin = call.bin ?? OUR_BIN;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env["PATH"],
    CNI_COMMAND: verb,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns ?? "",
    CNI_IFNAME: call.ifname ?? "eth0",
    CNI_ARGS: call.args ?? "",
    CNI_PATH: call.path ?? bin,
  };
  const r = await host.run([`${bin}/${plugin}`], { input: JSON.stringify(conf), env, timeoutMs: 60_000 });
  let json: Record<string, unknown> | undefined;
  try {
    json = r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : undefined;
  } catch {
    json = undefined;
  }
  return { code: r.code, stdout: r.stdout, stderr: r.stderr, json };
}

/** Like cni() but fails the test with the plugin's output when it does not succeed. */
export async function cniOk(
  host: Netns,
  plugin: string,
  verb: string,
  conf: object,
  call: CniCall,
): Promise<Record<string, unknown>> {
  const r = await cni(host, plugin, verb, conf, call);
  if (r.code !== 0) throw new Error(`${plugin} ${verb} failed (${r.code}): ${r.stdout} ${r.stderr}`);
  return r.json ?? {};
}

/** A temporary directory removed by the returned function. */
export function tempDir(tag: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), `cni-nft-${tag}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** nft ruleset and iptables rules of a namespace, for before/after comparisons. */
export async function firewallState(ns: Netns): Promise<string> {
  const nft = await ns.run(["nft", "--stateless", "list", "ruleset"]);
  const v4 = await ns.run(["iptables-save"]);
  const v6 = await ns.run(["ip6tables-save"]);
  const strip = (s: string): string =>
    s
      .split("\n")
      .filter((l) => !l.startsWith("#"))
      .join("\n");
  return [nft.stdout, strip(v4.stdout), strip(v6.stdout)].join("\n---\n");
}
