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

  /** Wraps anything thrown into a CniError (code 999 unless it already is one). */
  static from(e: unknown): CniError {
    if (e instanceof CniError) return e;
    if (e instanceof Error) return new CniError(ErrorCode.Internal, e.message);
    return new CniError(ErrorCode.Internal, String(e));
  }
}

/** Shorthand for `new CniError(ErrorCode.InvalidNetworkConfig, msg, details)`. */
export function configError(msg: string, details = ""): CniError {
  return new CniError(ErrorCode.InvalidNetworkConfig, msg, details);
}
