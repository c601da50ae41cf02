/**
 * cni-nft as a library: the nftables library at the top level (also `cni-nft/nftables`, the fake
 * in `cni-nft/nftables/fake`), the CNI core under `cni` for writing plugins.
 */
export * from "./nftables/index.js";
export * as cni from "./cni/index.js";
