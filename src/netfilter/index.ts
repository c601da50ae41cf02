/**
 * cni-nft/netfilter: an iptables manager's API (Neutron's IptablesManager shape) over iptables
 * or native nftables, and the translator from the iptables rule language to nft.
 */
export * from "./types.js";
export * from "./errors.js";
export { translateRule, type TranslateContext, type TranslatedRule, type IptablesArg } from "./translate.js";
export { tokenize } from "./tokenize.js";
export { NetfilterManager, type NetfilterManagerOptions, type Tables } from "./manager.js";
export { ManagedTable, type ManagedRule } from "./model.js";
export { createNetfilterManager, type CreateManagerOptions } from "./create.js";
export { NftablesBackend, baseChainSpec, type NftablesBackendOptions } from "./nft-backend.js";
export { IptablesBackend, type IptablesBackendOptions } from "./iptables-backend.js";
export type { Backend, ApplyStats, DesiredFamily, DesiredChain, DesiredSet, Changes } from "./backend.js";
export { canonicalMembers, nftSetSpec } from "./sets.js";
export {
  parseSaveFile,
  type SaveFile,
  type SavedTable,
  type SavedRule,
  type SavedIpsetSet,
} from "./save-file.js";
export { translateSaveFile, loadSaveFile, type FileTranslation, type Refusal } from "./translate-file.js";
