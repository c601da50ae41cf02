/**
 * How each object kind is validated and written in nft's text syntax, per verb. One place knows
 * which verbs each kind allows, mirroring what nft itself accepts.
 */
import { ValidationError } from "./errors.js";
import type {
  Chain,
  Element,
  Family,
  Features,
  Flowtable,
  NMap,
  NSet,
  NftObject,
  Rule,
  Verb,
} from "./types.js";
import {
  validateComment,
  validateElementValue,
  validateIfname,
  validateInteger,
  validateName,
  validateRuleText,
} from "./validate.js";

export const ALLOWED_VERBS: Readonly<Record<NftObject["kind"], readonly Verb[]>> = {
  table: ["add", "create", "delete", "destroy", "flush"],
  chain: ["add", "create", "delete", "destroy", "flush"],
  rule: ["add", "insert", "replace", "delete", "destroy"],
  set: ["add", "create", "delete", "destroy", "flush"],
  map: ["add", "create", "delete", "destroy", "flush"],
  element: ["add", "create", "delete", "destroy"],
  flowtable: ["add", "create", "delete", "destroy"],
  counter: ["add", "create", "delete", "destroy", "reset"],
};

const HOOKS = new Set(["prerouting", "input", "forward", "output", "postrouting", "ingress", "egress"]);
const CHAIN_TYPES = new Set(["filter", "nat", "route"]);
const PRIORITY_RE = /^(raw|mangle|dstnat|filter|security|srcnat|out)( [+-] \d{1,10})?$/;
const TYPE_RE = /^[a-z0-9_]+( \. [a-z0-9_]+)*( : ([a-z0-9_]+( \. [a-z0-9_]+)*|verdict))?$/;
const SET_FLAGS = new Set(["constant", "interval", "timeout", "dynamic"]);

/** Where an object lives: `inet mytable`. */
export interface Scope {
  family: Family;
  table: string;
}

/** The text of one element inside `{ ... }`; exported for the fake's dump. */
export function elementText(e: Element, withValue: boolean): string {
  let s = e.key.join(" . ");
  // nft 1.0.6 takes the counter statement only right after the key, before timeout and comment.
  if (e.counter) s += " counter";
  if (e.timeout !== undefined) s += ` timeout ${e.timeout}s`;
  if (e.comment !== undefined) s += ` comment "${e.comment}"`;
  if (withValue && e.value) s += ` : ${e.value.join(" . ")}`;
  return s;
}

function commentClause(comment: string | undefined): string {
  return comment === undefined ? "" : ` comment "${comment}" ;`;
}

export function chainSpec(c: Chain): string {
  let body = "";
  if (c.type) {
    body += ` type ${c.type} hook ${c.hook}`;
    if (c.device !== undefined) body += ` device "${c.device}"`;
    body += ` priority ${c.priority} ;`;
    if (c.policy) body += ` policy ${c.policy} ;`;
  }
  body += commentClause(c.comment);
  return body === "" ? "" : ` {${body} }`;
}

export function setSpec(s: NSet | NMap): string {
  let body = s.type !== undefined ? ` type ${s.type} ;` : ` typeof ${s.typeof} ;`;
  if (s.flags?.length) body += ` flags ${s.flags.join(",")} ;`;
  if (s.timeout !== undefined) body += ` timeout ${s.timeout}s ;`;
  if (s.gcInterval !== undefined) body += ` gc-interval ${s.gcInterval}s ;`;
  if (s.size !== undefined) body += ` size ${s.size} ;`;
  if (s.policy) body += ` policy ${s.policy} ;`;
  if (s.autoMerge) body += " auto-merge ;";
  if (s.counter) body += " counter ;";
  body += commentClause(s.comment);
  return ` {${body} }`;
}

export function flowtableSpec(f: Flowtable): string {
  let body = ` hook ingress priority ${f.priority ?? "filter"} ;`;
  if (f.devices?.length) body += ` devices = { ${f.devices.map((d) => `"${d}"`).join(", ")} } ;`;
  return ` {${body} }`;
}

/** Checks an object for a verb; throws ValidationError naming the field. Returns nothing. */
export function validateObject(verb: Verb, obj: NftObject, features?: Features): void {
  const allowed = ALLOWED_VERBS[obj.kind];
  if (!allowed) throw new ValidationError("kind", `unknown object kind ${JSON.stringify(String(obj.kind))}`);
  if (!allowed.includes(verb))
    throw new ValidationError("verb", `nft cannot ${verb} a ${obj.kind} (allowed: ${allowed.join(", ")})`);
  const wantsSpec = verb === "add" || verb === "create";
  switch (obj.kind) {
    case "table":
      if (obj.comment !== undefined) validateComment("table.comment", obj.comment);
      return;
    case "chain":
      return validateChain(obj, wantsSpec);
    case "rule":
      return validateRule(verb, obj, features);
    case "set":
    case "map":
      return validateSet(verb, obj, features);
    case "element":
      return validateElement(verb, obj);
    case "flowtable":
      validateName("flowtable.name", obj.name);
      if (
        obj.priority !== undefined &&
        typeof obj.priority !== "number" &&
        !/^filter( [+-] \d{1,10})?$/.test(obj.priority)
      )
        throw new ValidationError("flowtable.priority", "must be a number or filter with an optional offset");
      if (typeof obj.priority === "number")
        validateInteger("flowtable.priority", obj.priority, -(2 ** 31), 2 ** 31 - 1);
      obj.devices?.forEach((d, i) => validateIfname(`flowtable.devices[${i}]`, d));
      return;
    case "counter":
      validateName("counter.name", obj.name);
      if (obj.comment !== undefined) validateComment("counter.comment", obj.comment);
      return;
  }
}

function validateChain(c: Chain, wantsSpec: boolean): void {
  validateName("chain.name", c.name);
  if (c.comment !== undefined) validateComment("chain.comment", c.comment);
  const base = c.type !== undefined || c.hook !== undefined || c.priority !== undefined;
  if (!base) {
    if (c.policy !== undefined || c.device !== undefined)
      throw new ValidationError(
        "chain.policy",
        "policy and device need a base chain (type, hook and priority)",
      );
    return;
  }
  if (!wantsSpec) return;
  if (c.type === undefined || !CHAIN_TYPES.has(c.type))
    throw new ValidationError("chain.type", "a base chain needs type filter, nat or route");
  if (c.hook === undefined || !HOOKS.has(c.hook))
    throw new ValidationError("chain.hook", "a base chain needs a valid hook");
  if (typeof c.priority === "number") validateInteger("chain.priority", c.priority, -(2 ** 31), 2 ** 31 - 1);
  else if (typeof c.priority !== "string" || !PRIORITY_RE.test(c.priority))
    throw new ValidationError(
      "chain.priority",
      "must be a number or a priority name with an optional offset, like dstnat - 10",
    );
  if (c.policy !== undefined && c.policy !== "accept" && c.policy !== "drop")
    throw new ValidationError("chain.policy", "must be accept or drop");
  if (c.device !== undefined) validateIfname("chain.device", c.device);
}

function validateRule(verb: Verb, r: Rule, features?: Features): void {
  validateName("rule.chain", r.chain);
  if (r.index !== undefined && r.handle !== undefined)
    throw new ValidationError("rule.index", "give a position by index or by handle, not both");
  if (r.index !== undefined) validateInteger("rule.index", r.index, 0, 2 ** 31);
  if (r.handle !== undefined) validateInteger("rule.handle", r.handle, 1, 2 ** 53);
  if (verb === "add" || verb === "insert" || verb === "replace") {
    validateRuleText("rule.rule", r.rule);
    if (r.comment !== undefined) validateComment("rule.comment", r.comment);
  }
  if ((verb === "replace" || verb === "delete" || verb === "destroy") && r.handle === undefined)
    throw new ValidationError("rule.handle", `${verb} of a rule needs its handle`);
  if (verb === "replace" && r.index !== undefined)
    throw new ValidationError("rule.index", "replace takes a handle, not an index");
  if (verb === "destroy" && features && !features.destroy)
    throw new ValidationError(
      "verb",
      `nft ${features.version} has no destroy; rules cannot be destroyed there, delete them by handle`,
    );
}

function validateSet(verb: Verb, s: NSet | NMap, features?: Features): void {
  const k = s.kind;
  validateName(`${k}.name`, s.name);
  // An emulated destroy (add + delete) writes the spec too, and nft refuses to add a set that
  // exists with another type: the type is then needed, and checked like any spec.
  const emulatedDestroy =
    verb === "destroy" && (s.type !== undefined || s.typeof !== undefined || features?.destroy === false);
  const needsSpec = verb === "add" || verb === "create" || emulatedDestroy;
  if (!needsSpec) return;
  if ((s.type === undefined) === (s.typeof === undefined))
    throw new ValidationError(`${k}.type`, "give exactly one of type and typeof");
  if (s.type !== undefined && !TYPE_RE.test(s.type))
    throw new ValidationError(
      `${k}.type`,
      `${JSON.stringify(s.type)} is not a data type like ipv4_addr . inet_service`,
    );
  if (s.typeof !== undefined) validateRuleText(`${k}.typeof`, s.typeof);
  const isMap = (s.type ?? s.typeof ?? "").includes(" : ");
  if (isMap !== (k === "map"))
    throw new ValidationError(
      `${k}.type`,
      k === "map" ? "a map type needs `key : value`" : "a set type has no ` : value`",
    );
  s.flags?.forEach((f, i) => {
    if (!SET_FLAGS.has(f)) throw new ValidationError(`${k}.flags[${i}]`, `unknown flag ${JSON.stringify(f)}`);
  });
  if (s.timeout !== undefined) validateInteger(`${k}.timeout`, s.timeout, 0, 2 ** 31);
  if (s.gcInterval !== undefined) validateInteger(`${k}.gcInterval`, s.gcInterval, 0, 2 ** 31);
  if (s.size !== undefined) validateInteger(`${k}.size`, s.size, 1, 2 ** 32 - 1);
  if (s.policy !== undefined && s.policy !== "performance" && s.policy !== "memory")
    throw new ValidationError(`${k}.policy`, "must be performance or memory");
  if (s.comment !== undefined) validateComment(`${k}.comment`, s.comment);
}

function validateElement(verb: Verb, e: Element): void {
  if ((e.set === undefined) === (e.map === undefined))
    throw new ValidationError("element.set", "give exactly one of set and map");
  validateName(e.set !== undefined ? "element.set" : "element.map", e.set ?? e.map);
  if (!Array.isArray(e.key) || e.key.length === 0)
    throw new ValidationError("element.key", "must be a non-empty array");
  e.key.forEach((v, i) => validateElementValue(`element.key[${i}]`, v));
  if (e.set !== undefined && e.value !== undefined)
    throw new ValidationError("element.value", "set elements have no value");
  if (e.map !== undefined && (verb === "add" || verb === "create") && !e.value?.length)
    throw new ValidationError("element.value", "map elements need a value");
  e.value?.forEach((v, i) => validateElementValue(`element.value[${i}]`, v));
  if (e.comment !== undefined) validateComment("element.comment", e.comment);
  if (e.timeout !== undefined) validateInteger("element.timeout", e.timeout, 0, 2 ** 31);
}

/**
 * The command(s) for one operation. Returns more than one line only for an emulated destroy.
 * The object must have been validated.
 */
export function renderOperation(scope: Scope, verb: Verb, obj: NftObject, features?: Features): string[] {
  const where = `${scope.family} ${scope.table}`;
  const emulate = verb === "destroy" && features !== undefined && !features.destroy;
  const spec = verb === "add" || verb === "create";
  switch (obj.kind) {
    case "table":
      if (emulate) return [`add table ${where}`, `delete table ${where}`];
      return [
        `${verb} table ${where}${spec && obj.comment !== undefined ? ` {${commentClause(obj.comment)} }` : ""}`,
      ];
    case "chain": {
      const id = `${where} ${obj.name}`;
      if (emulate) return [`add chain ${id}`, `delete chain ${id}`];
      return [`${verb} chain ${id}${spec ? chainSpec(obj) : ""}`];
    }
    case "rule": {
      const id = `${where} ${obj.chain}`;
      if (verb === "delete" || verb === "destroy") return [`${verb} rule ${id} handle ${obj.handle}`];
      let pos = "";
      if (obj.index !== undefined) pos = ` index ${obj.index}`;
      else if (obj.handle !== undefined) pos = ` handle ${obj.handle}`;
      const comment = obj.comment !== undefined ? ` comment "${obj.comment}"` : "";
      return [`${verb} rule ${id}${pos} ${obj.rule}${comment}`];
    }
    case "set":
    case "map": {
      const id = `${obj.kind} ${where} ${obj.name}`;
      if (emulate) return [`add ${id}${setSpec(obj)}`, `delete ${id}`];
      return [`${verb} ${id}${spec ? setSpec(obj) : ""}`];
    }
    case "element":
      // Single elements are rare on hot paths: the transaction batches them (see batchElements).
      return renderElements(scope, verb, [obj], features).map(elementCommandText);
    case "flowtable": {
      const id = `flowtable ${where} ${obj.name}`;
      if (emulate) return [`add ${id}${flowtableSpec(obj)}`, `delete ${id}`];
      return [`${verb} ${id}${spec ? flowtableSpec(obj) : ""}`];
    }
    case "counter": {
      const id = `counter ${where} ${obj.name}`;
      if (emulate) return [`add ${id}`, `delete ${id}`];
      return [`${verb} ${id}${spec && obj.comment !== undefined ? ` {${commentClause(obj.comment)} }` : ""}`];
    }
  }
}

/** A command over many elements, with the text of each element so errors can be mapped to one. */
export interface ElementCommand {
  head: string;
  parts: string[];
}

export function elementCommandText(c: ElementCommand): string {
  return `${c.head} { ${c.parts.join(", ")} }`;
}

/** Commands for many elements of the same set or map (all with the same verb). */
export function renderElements(
  scope: Scope,
  verb: Verb,
  elems: Element[],
  features?: Features,
): ElementCommand[] {
  const first = elems[0];
  if (!first) return [];
  const kind = first.set !== undefined ? "set" : "map";
  const id = `element ${scope.family} ${scope.table} ${first.set ?? first.map}`;
  // Render only the form the verb needs: element batches run to 100,000s.
  const full = (): string[] => elems.map((e) => elementText(e, true));
  const keys = (): string[] => elems.map((e) => e.key.join(" . "));
  if (verb === "destroy" && features !== undefined && !features.destroy) {
    for (const e of elems)
      if (kind === "map" && !e.value?.length)
        throw new ValidationError(
          "element.value",
          `nft ${features.version} has no destroy: destroying a map element needs its value`,
        );
    return [
      { head: `add ${id}`, parts: full() },
      { head: `delete ${id}`, parts: keys() },
    ];
  }
  // delete and destroy take only keys
  return [{ head: `${verb} ${id}`, parts: verb === "add" || verb === "create" ? full() : keys() }];
}
