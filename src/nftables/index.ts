/** The nftables library: one table per instance, atomic transactions in nft's text syntax. */
export * from "./types.js";
export * from "./errors.js";
export { commandExec, libraryExec, type ExecOptions, type ExecResult, type NftExec } from "./exec.js";
export { isInterrupted, INTERRUPTED_ATTEMPTS } from "./retry.js";
export { Transaction, type RenderedTransaction } from "./transaction.js";
export { NFTables, type NFTablesOptions } from "./nftables.js";
export {
  concat,
  quoted,
  ifname,
  address,
  prefix,
  num,
  port,
  name,
  setRef,
  Token,
  type RulePart,
} from "./rule.js";
export {
  validateName,
  validateComment,
  validateIfname,
  validateAddress,
  validatePrefix,
  validatePort,
  validateInteger,
  validateRuleText,
  MAX_NAME_BYTES,
  MAX_COMMENT_BYTES,
} from "./validate.js";
export { probeFeatures, resetFeatureCache } from "./features.js";
export { compareVersions } from "./version.js";
export { renderDump, priorityValue, type TableState } from "./dump.js";
export { applyTransactions } from "./batch.js";
export {
  applyWithSkeleton,
  mergePlans,
  missingRules,
  type SkeletonChain,
  type SkeletonPlan,
} from "./skeleton.js";
