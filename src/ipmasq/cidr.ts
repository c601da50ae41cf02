import ipaddr from "ipaddr.js";

/** `10.88.0.5/24` -> `10.88.0.0/24` (and the same for IPv6). */
export function networkOf(cidr: string): string {
  const [addr, len] = ipaddr.parseCIDR(cidr);
  const bytes = addr.toByteArray();
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, len - i * 8));
    bytes[i] = bytes[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return `${ipaddr.fromByteArray(bytes).toString()}/${len}`;
}

export function addressOf(cidr: string): string {
  return ipaddr.parseCIDR(cidr)[0].toString();
}

export function isV6(cidrOrAddr: string): boolean {
  return cidrOrAddr.includes(":");
}
