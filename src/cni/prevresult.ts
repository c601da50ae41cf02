/**
 * prevResult of a chained plugin, refused the same way by every plugin: upstream's message
 * ("Required prevResult missing"), code 7 as every config problem here (upstream prints 999).
 * A prevResult that is present but invalid is refused once, when the skeleton parses it.
 */
import { CniError, ErrorCode } from "./errors.js";
import type { Result } from "./types.js";
import { compareVersions } from "./version.js";

export const PREV_RESULT_MISSING = "Required prevResult missing";

/** The prevResult, or the error every plugin answers when it is missing. */
export function requirePrevResult(args: { prevResult?: Result | undefined }): Result {
  if (!args.prevResult) throw new CniError(ErrorCode.InvalidNetworkConfig, PREV_RESULT_MISSING);
  return args.prevResult;
}

/**
 * The result versions a config's version parses a prevResult as, libcni's groups: a 1.x
 * config's prevResult is a 1.x result, a 0.3.0–0.4.0 config's a 0.3.x/0.4.0 one, a 0.1.0/0.2.0
 * config's a 0.1.0/0.2.0 one. A runtime hands a plugin its prevResult converted to the config's
 * version (libcni does), so one of another group comes from a broken chain.
 */
export function prevResultVersions(confVersion: string): string[] {
  if (compareVersions(confVersion, "1.0.0") >= 0) return ["1.0.0", "1.1.0"];
  if (compareVersions(confVersion, "0.3.0") >= 0) return ["0.3.0", "0.3.1", "0.4.0"];
  return ["0.1.0", "0.2.0"];
}

/**
 * Refuses a prevResult whose cniVersion (the config's when it has none, as upstream) is not of
 * the config's group, as upstream's version.ParsePrevResult does; code 7 (a bad config), where
 * upstream's plugins print 999 (docs/cni.md).
 */
export function requirePrevResultVersion(confVersion: string, prevVersion: string | undefined): void {
  const version = prevVersion || confVersion;
  const group = prevResultVersions(confVersion);
  if (group.includes(version)) return;
  throw new CniError(
    ErrorCode.InvalidNetworkConfig,
    `could not parse prevResult: a cniVersion ${confVersion} config takes a prevResult of version ${group.join(", ")}, but prevResult.cniVersion is ${JSON.stringify(version)}: give the prevResult in the config's version`,
  );
}
