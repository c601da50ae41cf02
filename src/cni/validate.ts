/** Validation of the values a runtime passes, with libcni's messages and codes. */
import { CniError, ErrorCode } from "./errors.js";

/** The spec's pattern for container IDs and network names. */
export const ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
export const MAX_IFNAME_LENGTH = 15;

export function validateContainerId(id: string): void {
  if (id === "") throw new CniError(ErrorCode.UnknownContainer, "missing containerID");
  if (!ID_PATTERN.test(id))
    throw new CniError(ErrorCode.InvalidEnvironment, "invalid characters in containerID", id);
}

export function validateNetworkName(name: string): void {
  if (name === "") throw new CniError(ErrorCode.InvalidNetworkConfig, "missing network name");
  if (!ID_PATTERN.test(name))
    throw new CniError(ErrorCode.InvalidNetworkConfig, "invalid characters found in network name", name);
}

/** libcni's ValidateInterfaceName: non-empty, at most 15 bytes, not . or .., no / : or whitespace. */
export function validateIfname(name: string): void {
  if (name.length === 0) throw new CniError(ErrorCode.InvalidEnvironment, "interface name is empty");
  if (Buffer.byteLength(name) > MAX_IFNAME_LENGTH)
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      "interface name is too long",
      `interface name should be less than ${MAX_IFNAME_LENGTH + 1} characters`,
    );
  if (name === "." || name === "..")
    throw new CniError(ErrorCode.InvalidEnvironment, "interface name is . or ..");
  if (/[/:\s]/u.test(name))
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      "interface name contains / or : or whitespace characters",
    );
}

/**
 * Parses CNI_ARGS (`K=V;K2=V2`) into a record. A pair without exactly one `=` is refused like
 * libcni ("ARGS: invalid pair").
 */
export function parseCniArgs(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!s) return out;
  for (const pair of s.split(";")) {
    if (pair === "") continue;
    const kv = pair.split("=");
    if (kv.length !== 2) throw new CniError(ErrorCode.InvalidEnvironment, `ARGS: invalid pair "${pair}"`);
    out[kv[0]!] = kv[1]!;
  }
  return out;
}

/** True when CNI_ARGS sets IgnoreUnknown to a true value ("1", "true", …, as Go's UnmarshallableBool). */
export function ignoresUnknown(args: Record<string, string>): boolean {
  const v = args.IgnoreUnknown?.toLowerCase();
  return v === "1" || v === "true" || v === "t";
}

/** Refuses CNI_ARGS keys outside `known` (IgnoreUnknown always known) unless IgnoreUnknown is set. */
export function checkKnownArgs(args: Record<string, string>, known: readonly string[]): void {
  if (ignoresUnknown(args)) return;
  const unknown = Object.entries(args)
    .filter(([k]) => k !== "IgnoreUnknown" && !known.includes(k))
    .map(([k, v]) => `"${k}=${v}"`);
  if (unknown.length) throw new CniError(ErrorCode.Internal, `ARGS: unknown args [${unknown.join(" ")}]`);
}
