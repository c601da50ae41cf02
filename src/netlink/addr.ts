/** Address arithmetic the link plugins need. */
import { addressOf, isV6, networkOf } from "../ipmasq/cidr.js";
import ipaddr from "ipaddr.js";

export function ipFamilyOf(addr: string): 4 | 6 {
  return isV6(addr) ? 6 : 4;
}

/** The first address of the subnet, as upstream computes a missing gateway. */
export function gatewayFor(cidr: string): string {
  const net = addressOf(networkOf(cidr));
  const bytes = ipaddr.parse(net).toByteArray();
  for (let i = bytes.length - 1; i >= 0; i--) {
    bytes[i] = (bytes[i]! + 1) & 0xff;
    if (bytes[i] !== 0) break;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

export function defaultRoute(family: 4 | 6): string {
  return family === 4 ? "0.0.0.0/0" : "::/0";
}

export function validMac(mac: string): boolean {
  return /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(mac);
}
