/**
 * sysctls of the caller's network namespace, written through /proc/sys (per namespace for
 * `net.*`), so setting one costs no process.
 */
import { readFileSync, writeFileSync } from "node:fs";

function sysctlPath(name: string): string {
  if (!/^[a-z0-9_.\-/]+$/i.test(name) || name.includes(".."))
    throw new Error(`invalid sysctl name ${JSON.stringify(name)}`);
  return `/proc/sys/${name.replace(/\./g, "/")}`;
}

/** Interface names may contain dots; this builds `net/ipv6/conf/<if>/<key>` safely. */
export function ifSysctl(family: "ipv4" | "ipv6", ifname: string, key: string): string {
  return `net/${family}/conf/${ifname}/${key}`;
}

export function readSysctl(name: string): string {
  return readFileSync(name.includes("/") ? `/proc/sys/${name}` : sysctlPath(name), "utf8").trim();
}

export function writeSysctl(name: string, value: string): void {
  const path = name.includes("/") ? `/proc/sys/${name}` : sysctlPath(name);
  if (name.includes("..")) throw new Error(`invalid sysctl ${JSON.stringify(name)}`);
  writeFileSync(path, value);
}

/** Writes only when the value differs (ip_forward writes reset other settings on some kernels). */
export function ensureSysctl(name: string, value: string): void {
  try {
    if (readSysctl(name) === value) return;
  } catch {
    // fall through to the write, which reports the error
  }
  writeSysctl(name, value);
}
