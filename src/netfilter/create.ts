/** One factory for both backends: the same calls, iptables or native nftables underneath. */
import type { Interface } from "../nftables/index.js";
import type { Runner } from "../process/index.js";
import { IptablesBackend } from "./iptables-backend.js";
import { NetfilterManager } from "./manager.js";
import { NftablesBackend } from "./nft-backend.js";
import type { IpVersion } from "./types.js";

export interface CreateManagerOptions {
  owner: string;
  backend: "nftables" | "iptables";
  /** Manage IPv6 too (default true). */
  ipv6?: boolean;
  /** The families to manage (overrides ipv6). */
  families?: IpVersion[];
  /** Network namespace (path or name under /run/netns). */
  netns?: string;
  /** Starts nft, iptables-restore, ipset (tests pass a FakeRunner). */
  runner?: Runner;
  nftPath?: string;
  /** nftables backend: the library instance per family (tests pass FakeNFTables). */
  nft?: (family: "ip" | "ip6", table: string) => Interface;
}

export function createNetfilterManager(opts: CreateManagerOptions): NetfilterManager {
  const common = {
    owner: opts.owner,
    ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
    ...(opts.runner !== undefined ? { runner: opts.runner } : {}),
  };
  const backend =
    opts.backend === "iptables"
      ? new IptablesBackend(common)
      : new NftablesBackend({
          ...common,
          ...(opts.nftPath !== undefined ? { nftPath: opts.nftPath } : {}),
          ...(opts.nft !== undefined ? { nft: opts.nft } : {}),
        });
  return new NetfilterManager({
    owner: opts.owner,
    backend,
    ...(opts.ipv6 !== undefined ? { ipv6: opts.ipv6 } : {}),
  });
}
