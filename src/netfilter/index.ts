/**
 * cni-nft/netfilter: an iptables manager's API (Neutron's IptablesManager shape) over iptables
 * or native nftables, and the translator from the iptables rule language to nft.
 */
export * from "./types.js";
export * from "./errors.js";
export { translateRule, type TranslateContext, type TranslatedRule, type IptablesArg } from "./translate.js";
export { tokenize } from "./tokenize.js";
