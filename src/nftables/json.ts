/**
 * Reading `nft --json` output into the library's objects. Only what the library writes is
 * understood; anything else in the same family is skipped, never fatal.
 */
import { NftError } from "./errors.js";
import { exactCopy } from "./json_fast.js";
import type {
  Chain,
  ChainHook,
  ChainPolicy,
  ChainType,
  Counter,
  Element,
  Flowtable,
  NMap,
  NSet,
  Rule,
  SetFlag,
  SetPolicy,
} from "./types.js";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The entries of `{"nftables": [...]}`, each as `[kind, body]`. */
export function parseListing(stdout: string): Array<[string, JsonObject]> {
  let doc: Json;
  try {
    doc = JSON.parse(stdout) as Json;
  } catch {
    throw new NftError("EUNKNOWN", `nft printed output that is not JSON: ${stdout.slice(0, 80)}`);
  }
  const list = isObject(doc) ? doc["nftables"] : undefined;
  if (!Array.isArray(list)) throw new NftError("EUNKNOWN", "nft JSON output has no nftables array");
  const out: Array<[string, JsonObject]> = [];
  for (const entry of list) {
    if (!isObject(entry)) continue;
    for (const [kind, body] of Object.entries(entry)) if (isObject(body)) out.push([kind, body]);
  }
  return out;
}

export function inTable(body: JsonObject, family: string, table: string): boolean {
  return body["family"] === family && body["table"] === table;
}

function str(v: Json | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}
function num(v: Json | undefined): number | undefined {
  return typeof v === "number" ? v : undefined;
}

/** A type as nft prints it: a string, or an array of concatenated types. */
function typeText(v: Json | undefined): string | undefined {
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return v.filter((x) => typeof x === "string").join(" . ");
  return undefined;
}

export function chainFromJson(b: JsonObject): Chain {
  const chain: Chain = { kind: "chain", name: str(b["name"]) ?? "", handle: num(b["handle"]) };
  if (b["type"] !== undefined) {
    chain.type = str(b["type"]) as ChainType;
    chain.hook = str(b["hook"]) as ChainHook;
    chain.priority = num(b["prio"]) ?? 0;
    if (b["policy"] !== undefined) chain.policy = str(b["policy"]) as ChainPolicy;
    const dev = b["dev"];
    if (typeof dev === "string") chain.device = dev;
  }
  if (b["comment"] !== undefined) chain.comment = str(b["comment"]);
  return chain;
}

export function setFromJson(kind: "set" | "map", b: JsonObject): NSet | NMap {
  let type = typeText(b["type"]) ?? "";
  if (kind === "map") type += ` : ${typeText(b["map"]) ?? ""}`;
  const s: NSet | NMap = { kind, name: str(b["name"]) ?? "", type, handle: num(b["handle"]) };
  const flags = b["flags"];
  if (Array.isArray(flags) && flags.length) s.flags = flags.filter((f) => typeof f === "string") as SetFlag[];
  if (num(b["timeout"]) !== undefined) s.timeout = num(b["timeout"]);
  if (num(b["gc-interval"]) !== undefined) s.gcInterval = num(b["gc-interval"]);
  if (num(b["size"]) !== undefined) s.size = num(b["size"]);
  if (b["policy"] !== undefined) s.policy = str(b["policy"]) as SetPolicy;
  if (b["auto-merge"] === true) s.autoMerge = true;
  const stmt = b["stmt"];
  if (Array.isArray(stmt) && stmt.some((x) => isObject(x) && "counter" in x)) s.counter = true;
  if (b["comment"] !== undefined) s.comment = str(b["comment"]);
  return s;
}

export function counterFromJson(b: JsonObject): Counter {
  const c: Counter = { kind: "counter", name: str(b["name"]) ?? "", handle: num(b["handle"]) };
  c.packets = num(b["packets"]) ?? 0;
  c.bytes = num(b["bytes"]) ?? 0;
  if (b["comment"] !== undefined) c.comment = str(b["comment"]);
  return c;
}

export function flowtableFromJson(b: JsonObject): Flowtable {
  const f: Flowtable = { kind: "flowtable", name: str(b["name"]) ?? "", handle: num(b["handle"]) };
  f.priority = num(b["prio"]) ?? 0;
  const dev = b["dev"];
  if (typeof dev === "string") f.devices = [dev];
  else if (Array.isArray(dev)) f.devices = dev.filter((d) => typeof d === "string");
  return f;
}

export function ruleFromJson(b: JsonObject): Rule {
  const r: Rule = { kind: "rule", chain: str(b["chain"]) ?? "", rule: "", handle: num(b["handle"]) };
  if (b["comment"] !== undefined) r.comment = str(b["comment"]);
  return r;
}

const BARE_WORD = /^[A-Za-z0-9_.:/*-]+$/;
const VERDICTS = ["accept", "drop", "continue", "return"] as const;

/**
 * The parts of a key or map value, as text the library would write, appended to `out` (a
 * concatenation gives several). Written without per-value arrays: listings run to 100,000s.
 */
function valueText(v: Json | undefined, out: string[] = []): string[] {
  // Strings that are not a bare word (interface names with spaces, say) come back quoted, as
  // they must be written.
  if (typeof v === "string") out.push(BARE_WORD.test(v) ? v : `"${v}"`);
  else if (typeof v === "number") out.push(String(v));
  else if (isObject(v)) {
    const concat = v["concat"];
    if (Array.isArray(concat)) {
      for (const x of concat) valueText(x, out);
      return out;
    }
    out.push(compoundText(v));
  } else out.push(JSON.stringify(v));
  return out;
}

/** One value that is not a concatenation: a prefix, a range or a verdict. */
function compoundText(v: JsonObject): string {
  const prefix = v["prefix"];
  if (isObject(prefix)) return `${valueText(prefix["addr"]).join("")}/${valueText(prefix["len"]).join("")}`;
  const range = v["range"];
  if (Array.isArray(range)) return `${valueText(range[0]).join("")}-${valueText(range[1]).join("")}`;
  for (const verdict of VERDICTS) if (verdict in v) return verdict;
  for (const jump of ["jump", "goto"] as const) {
    const t = v[jump];
    if (isObject(t)) return `${jump} ${str(t["target"]) ?? ""}`;
  }
  return JSON.stringify(v);
}

/** Elements of a listed set or map (`elem` array of its JSON). */
export function elementsFromJson(kind: "set" | "map", name: string, b: JsonObject): Element[] {
  const elems = b["elem"];
  if (!Array.isArray(elems)) return [];
  // A plain loop building each element in one go: sets and maps run to 100,000s of elements.
  const out: Element[] = new Array<Element>(elems.length);
  const scratch: string[] = [];
  for (let i = 0; i < elems.length; i++) {
    const raw = elems[i];
    let keyJson: Json | undefined = raw;
    let valueJson: Json | undefined;
    if (kind === "map" && Array.isArray(raw)) {
      keyJson = raw[0];
      valueJson = raw[1];
    }
    // Elements with a timeout, comment or counter come wrapped: {"elem": {"val": key, ...}}.
    let w: Json | undefined;
    if (isObject(keyJson) && isObject((w = keyJson["elem"]))) keyJson = w["val"];
    else w = undefined;
    scratch.length = 0;
    const key = exactCopy(valueText(keyJson, scratch));
    let e: Element;
    if (kind === "set") e = { kind: "element", set: name, key };
    else {
      scratch.length = 0;
      e = { kind: "element", map: name, key, value: exactCopy(valueText(valueJson, scratch)) };
    }
    if (isObject(w)) {
      const timeout = num(w["timeout"]);
      if (timeout !== undefined) e.timeout = timeout;
      if (w["comment"] !== undefined) e.comment = str(w["comment"]);
      const counter = w["counter"];
      if (isObject(counter)) {
        e.counter = true;
        e.packets = num(counter["packets"]) ?? 0;
        e.bytes = num(counter["bytes"]) ?? 0;
      }
    }
    out[i] = e;
  }
  return out;
}
