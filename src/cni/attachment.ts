/**
 * One attachment: a container's interface on a network. Every plugin names what it owns on the
 * host after it, with upstream's hashes and comments, so upstream's plugins and ours recognise
 * each other's state: iptables chains `CNI-<hash of network and container>` with the comment
 * `name: "<net>" id: "<container>"`, nftables rules and elements whose comment starts with
 * `<network hash>-<interface and container hash>`.
 */

export interface Attachment {
  readonly network: string;
  readonly containerId: string;
  readonly ifname: string;
}

/** The attachment a verb acts on (ADD, DEL, CHECK): the config's network, CNI_CONTAINERID, CNI_IFNAME. */
export function attachmentOf(args: {
  config: { name: string };
  containerId: string;
  ifname: string;
}): Attachment {
  return { network: args.config.name, containerId: args.containerId, ifname: args.ifname };
}

export function sha512Hex(s: string): string {
  // node:crypto is loaded on first use: requiring it costs a compiled plugin ~1.5 ms at start-up,
  // and most plugin calls never hash (docs/performance.md).
  return process.getBuiltinModule("node:crypto").createHash("sha512").update(s).digest("hex");
}

/** `CNI-<prefix>` + hex of sha512(network + containerID), 28 bytes in all, as upstream's iptables chains. */
export function iptablesChainName(a: Pick<Attachment, "network" | "containerId">, prefix = ""): string {
  return (`CNI-${prefix}` + sha512Hex(a.network + a.containerId)).slice(0, 28);
}

/** Upstream's iptables comment: `name: "<net>" id: "<containerID>"` (Go %q quoting). */
export function iptablesComment(a: Pick<Attachment, "network" | "containerId">): string {
  return `name: ${JSON.stringify(a.network)} id: ${JSON.stringify(a.containerId)}`;
}

/** What every nftables owner hash of a network starts with. */
export function nftNetworkHash(network: string): string {
  return sha512Hex(network).slice(0, 16);
}

/** Upstream's nftables owner hash: network hash, `-`, hash of `<ifname>:<containerID>`. */
export function nftOwnerHash(a: Attachment): string {
  return `${nftNetworkHash(a.network)}-${sha512Hex(`${a.ifname}:${a.containerId}`).slice(0, 16)}`;
}

/** Upstream's nftables comment: owner hash, then a readable description, cut to 128 bytes. */
export function nftOwnerComment(a: Attachment): string {
  const strip = (s: string): string => s.replace(/"/g, "");
  const c = `${nftOwnerHash(a)}, net: ${strip(a.network)}, if: ${strip(a.ifname)}, id: ${strip(a.containerId)}`;
  return Buffer.from(c)
    .subarray(0, 128)
    .toString("utf8")
    .replace(/\uFFFD+$/, "");
}

/**
 * A tag for an owner element (`<tag of the owner hash> . <tag of the element's key>`, set type
 * `ifname . ifname`): 15 hex characters of sha512, quoted, which nft takes as one string key part
 * (16 bytes with the NUL). A DEL deletes the owner element with the element in one transaction,
 * which fails unless the element is still its own (docs/portmap.md, docs/firewall.md).
 */
export function nftOwnerTag(s: string): string {
  return `"${sha512Hex(s).slice(0, 15)}"`;
}

/** The owner hash a comment written by {@link nftOwnerComment} starts with. */
export function ownerHashOf(comment: string): string {
  return comment.split(",")[0]!;
}

/**
 * A GC's test for nftables owners: true for a comment (or owner hash) of an attachment of
 * `network` that is not in `valid`.
 */
export function staleOwner(
  network: string,
  valid: readonly Attachment[],
): (commentOrHash: string) => boolean {
  const keep = new Set(valid.map((a) => nftOwnerHash({ ...a, network })));
  const net = nftNetworkHash(network);
  return (c) => {
    const hash = ownerHashOf(c);
    return hash.startsWith(net) && !keep.has(hash);
  };
}
