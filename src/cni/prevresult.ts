/**
 * prevResult of a chained plugin, refused the same way by every plugin: upstream's message
 * ("Required prevResult missing"), code 7 as every config problem here (upstream prints 999).
 * A prevResult that is present but invalid is refused once, when the skeleton parses it.
 */
import { CniError, ErrorCode } from "./errors.js";
import type { Result } from "./types.js";

export const PREV_RESULT_MISSING = "Required prevResult missing";

/** The prevResult, or the error every plugin answers when it is missing. */
export function requirePrevResult(args: { prevResult?: Result | undefined }): Result {
  if (!args.prevResult) throw new CniError(ErrorCode.InvalidNetworkConfig, PREV_RESULT_MISSING);
  return args.prevResult;
}
