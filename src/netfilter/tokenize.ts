/**
 * Splitting iptables rule text into arguments the way iptables-restore does: words separated by
 * blanks, double or single quotes group a word (iptables-save quotes comments with spaces), a
 * backslash escapes a quote inside double quotes. Line breaks and NUL are refused: one rule is
 * one line of restore input.
 */
import { TranslationError } from "./errors.js";

export function tokenize(rule: string): string[] {
  if (/[\n\r\0]/.test(rule))
    throw new TranslationError(rule.split(/[\n\r]/)[0] ?? "", "", "a rule is one line");
  const out: string[] = [];
  let i = 0;
  while (i < rule.length) {
    const c = rule[i]!;
    if (c === " " || c === "\t") {
      i++;
      continue;
    }
    let word = "";
    let quoted = false;
    while (i < rule.length && rule[i] !== " " && rule[i] !== "\t") {
      const q = rule[i]!;
      if (q === '"' || q === "'") {
        quoted = true;
        const end = findClose(rule, i + 1, q);
        if (end < 0) throw new TranslationError(rule, "", `unbalanced ${q} quote`);
        const inner = rule.slice(i + 1, end);
        word += q === '"' ? inner.replace(/\\(["\\])/g, "$1") : inner;
        i = end + 1;
      } else {
        word += q;
        i++;
      }
    }
    if (word !== "" || quoted) out.push(word);
  }
  return out;
}

function findClose(s: string, from: number, q: string): number {
  for (let i = from; i < s.length; i++) {
    if (q === '"' && s[i] === "\\") i++;
    else if (s[i] === q) return i;
  }
  return -1;
}

/** Quotes an argument for iptables-restore input where it needs it. */
export function quoteArg(arg: string): string {
  if (arg !== "" && /^[A-Za-z0-9_.:/,+=@%^!-]+$/.test(arg)) return arg;
  return `"${arg.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}
