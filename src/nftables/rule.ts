/**
 * Building rule text from values that came from outside. Words written in code are plain
 * strings; anything else goes through one of the typed helpers, which validate and quote it, so
 * a rule built with {@link concat} cannot be turned into another command.
 */
import {
  validateAddress,
  validateIfname,
  validateInteger,
  validateName,
  validatePrefix,
  validateQuotable,
  validateRuleText,
  MAX_NAME_BYTES,
} from "./validate.js";

/** A piece of rule text that has been validated and needs no further checking. */
export class Token {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

/** A string value, quoted (`"value"`). */
export function quoted(value: string, field = "value"): Token {
  return new Token(`"${validateQuotable(field, value, MAX_NAME_BYTES)}"`);
}

/** An interface name, quoted; `wildcard` allows a trailing `*`. */
export function ifname(value: string, field = "interface", wildcard = false): Token {
  return new Token(`"${validateIfname(field, value, wildcard)}"`);
}

export function address(value: string, field = "address"): Token {
  return new Token(validateAddress(field, value));
}

export function prefix(value: string, field = "prefix"): Token {
  return new Token(validatePrefix(field, value));
}

export function num(value: number, field = "number", min = 0, max = Number.MAX_SAFE_INTEGER): Token {
  return new Token(String(validateInteger(field, value, min, max)));
}

export function port(value: number, field = "port"): Token {
  return num(value, field, 0, 65535);
}

/** A chain, set or map name (for `jump`, `@set`, `vmap @map`). */
export function name(value: string, field = "name"): Token {
  return new Token(validateName(field, value));
}

/** A set reference, `@name`. */
export function setRef(value: string, field = "set"): Token {
  return new Token(`@${validateName(field, value)}`);
}

export type RulePart = string | number | Token | readonly RulePart[];

/**
 * Joins words, numbers and tokens into rule text with single spaces; arrays are flattened so
 * optional parts can be spread in. Plain strings are checked like any rule text.
 */
export function concat(...parts: RulePart[]): string {
  const words: string[] = [];
  const push = (part: RulePart): void => {
    if (part instanceof Token) words.push(part.text);
    else if (typeof part === "number")
      words.push(String(validateInteger("number", part, -(2 ** 53), 2 ** 53)));
    else if (typeof part === "string") {
      if (part !== "") words.push(part);
    } else for (const p of part) push(p);
  };
  for (const p of parts) push(p);
  return validateRuleText("rule", words.join(" "));
}
