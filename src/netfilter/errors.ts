/**
 * One error type for the netfilter manager and the translator, with a code to branch on and
 * predicates, as the nftables library does.
 */

export type NetfilterErrorCode =
  | "EUNSUPPORTED" // an iptables rule part with no translation (the message says the nft way)
  | "EINVAL" // a value refused before anything ran (names the field)
  | "ENOCHAIN" // a chain that is not the manager's
  | "ENOSET" // a set that is not declared
  | "EAPPLY" // the kernel refused an apply (nothing changed; state is read again next time)
  | "ESTATE"; // the kernel's state is not what the manager wrote (someone else changed it)

export class NetfilterError extends Error {
  override readonly name: string = "NetfilterError";
  constructor(
    readonly code: NetfilterErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A rule the translator refused: which rule, which part of it, and what nft offers instead. */
export class TranslationError extends NetfilterError {
  override readonly name = "TranslationError";
  constructor(
    /** The rule as given. */
    readonly rule: string,
    /** The option, match or target that could not be translated, as written. */
    readonly part: string,
    /** Why. */
    readonly reason: string,
    /** The nftables way to do it, where there is one. */
    readonly nftWay?: string,
  ) {
    super(
      part === "" ? "EINVAL" : "EUNSUPPORTED",
      `rule "${rule}": ${part ? `${part}: ` : ""}${reason}${nftWay ? `; in nft: ${nftWay}` : ""}`,
    );
  }
}

export function isUnsupported(err: unknown): err is TranslationError {
  return err instanceof TranslationError && err.code === "EUNSUPPORTED";
}

export function isTranslationError(err: unknown): err is TranslationError {
  return err instanceof TranslationError;
}

export function isNetfilterError(err: unknown, code?: NetfilterErrorCode): err is NetfilterError {
  return err instanceof NetfilterError && (code === undefined || err.code === code);
}
