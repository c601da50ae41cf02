/**
 * Ethernet (EUI-48) addresses. Parsing accepts Go's net.ParseMAC forms for 6 bytes (upstream's
 * plugins parse runtime and config MACs with it): `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff`,
 * `aabb.ccdd.eeff`. Printing is canonical: lower case, colons (what iproute2 and nft print).
 */

const COLONS_OR_DASHES =
  /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i;
const DOTS = /^([0-9a-f]{4})\.([0-9a-f]{4})\.([0-9a-f]{4})$/i;

/** The canonical form of a MAC address, or undefined when `s` is not one. */
export function parseMac(s: string): string | undefined {
  if (typeof s !== "string") return undefined;
  const m = COLONS_OR_DASHES.exec(s);
  if (m) return [m[1], m[3], m[4], m[5], m[6], m[7]].join(":").toLowerCase();
  const d = DOTS.exec(s);
  if (d) return (d[1]! + d[2]! + d[3]!).replace(/(..)(?!$)/g, "$1:").toLowerCase();
  return undefined;
}

export function isMac(s: string): boolean {
  return parseMac(s) !== undefined;
}

function firstOctet(mac: string): number {
  return parseInt(mac.slice(0, 2), 16);
}

/** A multicast (group) address: the least significant bit of the first octet; includes broadcast. */
export function isMulticastMac(canonical: string): boolean {
  return (firstOctet(canonical) & 1) === 1;
}

export function isBroadcastMac(canonical: string): boolean {
  return canonical === "ff:ff:ff:ff:ff:ff";
}

export function isZeroMac(canonical: string): boolean {
  return canonical === "00:00:00:00:00:00";
}

/**
 * Why a MAC cannot be an interface's own address (the kernel refuses these with "Cannot assign
 * requested address"), or undefined when it can. Takes any form parseMac accepts.
 */
export function unicastMacProblem(mac: string): string | undefined {
  const m = parseMac(mac);
  if (m === undefined) return "is not a MAC address";
  if (isZeroMac(m)) return "is the all-zero address";
  if (isBroadcastMac(m)) return "is the broadcast address";
  if (isMulticastMac(m)) return "is a multicast address";
  return undefined;
}
