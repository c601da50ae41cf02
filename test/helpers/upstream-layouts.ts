/**
 * State written the way upstream's current nftables portmap and masquerade write it (tables
 * ip/ip6 cni_hostport, inet cni_plugins_masquerade; read from upstream's source, compared once
 * by hand with its binary's output). Upstream 1.1.1, the oracle installed in /usr/lib/cni, has
 * neither, so tests that need a host in those layouts write them with this.
 */
import { nftOwnerComment, type Attachment } from "../../src/cni/attachment.js";
import { addressOf, familyOf, subnetOf } from "../../src/address/index.js";

/**
 * nft input that adds one container's masquerade as upstream's ADD does (and cni-nft's before
 * its own table): its table and chains, the base chain rewritten, one rule per address.
 */
export function upstreamNftMasq(a: Attachment, addresses: readonly string[]): string {
  const t = "inet cni_plugins_masquerade";
  const lines = [
    `add table ${t} { comment "Masquerading for plugins from github.com/containernetworking/plugins" ; }`,
    `add chain ${t} masq_checks { comment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet" ; }`,
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat ; }`,
    `flush chain ${t} postrouting`,
    `add rule ${t} postrouting ip daddr 224.0.0.0/4 return`,
    `add rule ${t} postrouting ip6 daddr ff00::/8 return`,
    `add rule ${t} postrouting goto masq_checks`,
  ];
  for (const x of addresses) {
    const ip = familyOf(x) === 6 ? "ip6" : "ip";
    lines.push(
      `add rule ${t} masq_checks ${ip} saddr ${addressOf(x)} ${ip} daddr != ${subnetOf(x)} masquerade comment "${nftOwnerComment(a)}"`,
    );
  }
  return lines.join("\n") + "\n";
}
export interface UpstreamMapping {
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp";
  hostIP?: string;
}

/** nft input that adds one container's mappings in upstream's nftables layout. */
export function upstreamNftPortmap(
  containerId: string,
  mappings: UpstreamMapping[],
  containers: string[],
  snat = true,
): string {
  const out: string[] = [];
  for (const family of [4, 6] as const) {
    const addrs = containers.filter((a) => a.includes(":") === (family === 6));
    if (addrs.length === 0) continue;
    const ip = family === 4 ? "ip" : "ip6";
    const t = `${ip} cni_hostport`;
    out.push(
      `add table ${t} { comment "CNI portmap plugin"; }`,
      `add chain ${t} hostports`,
      `add chain ${t} hostip_hostports`,
      `add chain ${t} hostports_all`,
      `flush chain ${t} hostports_all`,
      `add rule ${t} hostports_all jump hostip_hostports`,
      `add rule ${t} hostports_all jump hostports`,
      `add chain ${t} prerouting { type nat hook prerouting priority -100; }`,
      `flush chain ${t} prerouting`,
      `add rule ${t} prerouting fib daddr type local jump hostports_all`,
      `add chain ${t} output { type nat hook output priority -100; }`,
      `flush chain ${t} output`,
      `add rule ${t} output fib daddr type local jump hostports_all`,
    );
    if (snat) out.push(`add chain ${t} masquerading { type nat hook postrouting priority 100; }`);
    for (const a of addrs) {
      for (const m of mappings) {
        if (m.hostIP && m.hostIP.includes(":") !== (family === 6)) continue;
        const to = family === 4 ? `${a}:${m.containerPort}` : `[${a}]:${m.containerPort}`;
        const host =
          m.hostIP && m.hostIP !== "0.0.0.0" && m.hostIP !== "::" ? `${ip} daddr ${m.hostIP} ` : "";
        out.push(
          `add rule ${t} hostports ${host}${m.protocol} dport ${m.hostPort} dnat to ${to} comment "${containerId}"`,
        );
      }
      if (snat) {
        out.push(
          `add rule ${t} masquerading ${ip} saddr ${a} ${ip} daddr ${a} masquerade comment "${containerId}"`,
        );
        if (family === 4)
          out.push(
            `add rule ${t} masquerading ip saddr 127.0.0.1 ip daddr ${a} masquerade comment "${containerId}"`,
          );
      }
    }
  }
  return out.join("\n") + "\n";
}
