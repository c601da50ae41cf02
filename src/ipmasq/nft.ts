/** The parts of the nftables library the masquerade backends use. */
export {
  NFTables,
  applyWithSkeleton,
  concat,
  address,
  prefix,
  isNotFound,
  type Transaction,
} from "../nftables/index.js";
export interface ExecOptionsLike {
  netns?: string;
  nftPath?: string;
}
