/** Debian's dnsmasq as a DHCP server on a bridge `br0` of a server namespace (DNS off, no ping probe). */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { startBackground, type Background } from "./background.js";
import type { Netns } from "./netns.js";

export const haveDnsmasq = (): boolean => existsSync("/usr/sbin/dnsmasq");

/** Makes br0 with `prefix.1/24` in `server` and serves `prefix.10`-`prefix.250` on it. */
export async function startDhcpServer(
  server: Netns,
  prefix: string,
  dir: string,
  extra: string[] = [],
): Promise<Background> {
  await server.sh(["ip", "link", "add", "br0", "type", "bridge"]);
  await server.sh(["ip", "addr", "add", `${prefix}.1/24`, "dev", "br0"]);
  await server.sh(["ip", "link", "set", "br0", "up"]);
  return startBackground(
    server.argv([
      "dnsmasq",
      "--keep-in-foreground",
      "--conf-file=/dev/null",
      "--port=0",
      "--interface=br0",
      "--bind-interfaces",
      "--no-ping",
      "--user=root",
      "--log-dhcp",
      "--log-facility=-",
      `--dhcp-range=${prefix}.10,${prefix}.250,255.255.255.0,2m`,
      `--dhcp-leasefile=${join(dir, "dnsmasq.leases")}`,
      "--dhcp-authoritative",
      ...extra,
    ]),
    join(dir, "dnsmasq.log"),
  );
}
