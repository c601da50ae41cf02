/**
 * State written the way upstream's current nftables portmap writes it (tables ip/ip6
 * cni_hostport; read from upstream's source, compared once by hand with its binary's output).
 * Upstream 1.1.1, the oracle installed in /usr/lib/cni, has no nftables portmap, so tests that
 * need a host in that layout write it with this.
 */
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
