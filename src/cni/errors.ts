/** CNI error codes (CNI spec, "Error" section) and the error type plugins throw. */

export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IOFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  Internal: 999,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** An error as the CNI spec prints it: `{cniVersion, code, msg, details}` on stdout, non-zero exit. */
export class CniError extends Error {
  override readonly name = "CniError";
  constructor(
    readonly code: number,
    msg: string,
    readonly details = "",
    options?: { cause?: unknown },
  ) {
    super(msg, options);
  }

  /** The spec's JSON form (details omitted when empty, like libcni). */
  toJSON(cniVersion?: string): { cniVersion?: string; code: number; msg: string; details?: string } {
    return {
      ...(cniVersion ? { cniVersion } : {}),
      code: this.code,
      msg: this.message,
      ...(this.details ? { details: this.details } : {}),
    };
  }

  /** Wraps anything thrown into a CniError (code 999 unless it already is one), keeping it as cause. */
  static from(e: unknown): CniError {
    if (e instanceof CniError) return e;
    if (e instanceof Error) return new CniError(ErrorCode.Internal, e.message, "", { cause: e });
    return new CniError(ErrorCode.Internal, String(e));
  }

  /**
   * `context: message` of what was thrown, with its code (999 unless it is a CniError) and the
   * original as cause: a chain a reader follows from what the plugin did to what the tool said.
   */
  static wrap(context: string, e: unknown): CniError {
    const inner = CniError.from(e);
    return new CniError(inner.code, `${context}: ${inner.message}`, inner.details, { cause: e });
  }
}

/** Messages of an error and its causes, outermost first (for logs and `details`). */
export function causeChain(e: unknown): string[] {
  const out: string[] = [];
  let cur: unknown = e;
  while (cur instanceof Error && out.length < 16) {
    out.push(cur.message);
    cur = cur.cause;
  }
  if (cur !== undefined && !(cur instanceof Error))
    out.push(typeof cur === "string" ? cur : JSON.stringify(cur));
  return out;
}

/** Code 50: a tool the plugin needs is missing (STATUS). */
export function pluginNotAvailable(missing: readonly string[]): CniError {
  return new CniError(
    ErrorCode.PluginNotAvailable,
    `plugin not available: ${missing.join(", ")} not found in PATH`,
  );
}

/** Shorthand for `new CniError(ErrorCode.InvalidNetworkConfig, msg, details)`. */
export function configError(msg: string, details = ""): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg, details);
}
