/** One factory for both backends: the same calls, iptables or native nftables underneath. */
import type { Interface } from "../nftables/index.js";
import type { Runner } from "../process/index.js";
import { IptablesBackend } from "./iptables-backend.js";
import { NetfilterManager } from "./manager.js";
import { NftablesBackend } from "./nft-backend.js";
import { NetfilterError } from "./errors.js";
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
  /** iptables backend: starts iptables-restore, ipset (tests pass a FakeRunner). */
  runner?: Runner;
  /**
   * nftables backend, required: the nftables connection (the CLI passes the real `NFTables`,
   * tests the fake). The netfilter manager never builds one itself.
   */
  nft?: Interface;
}

export function createNetfilterManager(opts: CreateManagerOptions): NetfilterManager {
  const common = {
    owner: opts.owner,
    ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
    ...(opts.runner !== undefined ? { runner: opts.runner } : {}),
  };
  let backend;
  if (opts.backend === "iptables") backend = new IptablesBackend(common);
  else if (opts.nft) backend = new NftablesBackend({ owner: opts.owner, nft: opts.nft });
  else throw new NetfilterError("EINVAL", "the nftables backend needs an nftables Interface (option nft)");
  return new NetfilterManager({
    owner: opts.owner,
    backend,
    ...(opts.ipv6 !== undefined ? { ipv6: opts.ipv6 } : {}),
  });
}
