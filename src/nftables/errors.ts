import type { Operation } from "./types.js";

/** Error codes: the errno nft reported where there is one, otherwise what went wrong on our side. */
export type NftErrorCode =
  | "ENOENT" // an object or element to change does not exist
  | "EEXIST" // create of something that exists
  | "EBUSY" // delete of something still in use
  | "EINTR" // a netlink dump kept being interrupted by concurrent changes (retries exhausted)
  | "EINVAL" // input refused by the library before nft ran
  | "ESYNTAX" // nft could not parse the text
  | "ENOTSUP" // the nft binary or kernel lacks a feature
  | "ENOEXEC" // nft could not be run
  | "EUNKNOWN";

export class NftError extends Error {
  override readonly name: string = "NftError";
  constructor(
    readonly code: NftErrorCode,
    message: string,
    /** The operation that failed, when nft's error could be mapped back to one. */
    readonly operation?: Operation,
    /** Index of that operation in its transaction. */
    readonly operationIndex?: number,
    /** nft's own output, unchanged. */
    readonly stderr?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Input refused before anything reached nft; names the field so a caller can say what to fix. */
export class ValidationError extends NftError {
  override readonly name = "ValidationError";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super("EINVAL", `${field}: ${message}`);
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof NftError && err.code === "ENOENT";
}

/**
 * ENOENT for an element whose set or map exists: the element itself is missing. nft finds a
 * missing table, set or map before anything reaches the kernel ("No such file or directory" at
 * the name); a missing element only the kernel reports ("Could not process rule").
 */
export function isElementNotFound(err: unknown): err is NftError & { operationIndex: number } {
  return (
    isNotFound(err) &&
    (err as NftError).operation?.object.kind === "element" &&
    (err as NftError).operationIndex !== undefined &&
    /Could not process rule|: element .* does not exist/.test((err as NftError).message)
  );
}

export function isAlreadyExists(err: unknown): boolean {
  return err instanceof NftError && err.code === "EEXIST";
}

const ERRNO_BY_MESSAGE: ReadonlyArray<[RegExp, NftErrorCode]> = [
  [/No such file or directory/, "ENOENT"],
  [/File exists/, "EEXIST"],
  [/Device or resource busy/, "EBUSY"],
  [/Interrupted system call/, "EINTR"],
  [/syntax error|unexpected|Could not resolve|Error: .*(undefined|not found|invalid)/i, "ESYNTAX"],
  [/Operation not supported|Protocol not supported|not compiled|unknown/i, "ENOTSUP"],
];

/** Maps nft's message (not localised, per field facts) to an error code. */
export function codeFromMessage(message: string): NftErrorCode {
  for (const [re, code] of ERRNO_BY_MESSAGE) if (re.test(message)) return code;
  return "EUNKNOWN";
}
