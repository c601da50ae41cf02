/**
 * Sets and maps of the fake and their elements, as nft and the kernel treat them: types and
 * flags fixed at creation, EBUSY for a set a rule uses, elements with values, verdicts and
 * counters that must exist, timeouts only where the set has the flag. Operations of a
 * {@link Draft}.
 */
import type { Element, NMap, NSet, Operation } from "./types.js";
import {
  fail,
  isCounterMap,
  keyOf,
  objectUser,
  sameStrings,
  unquote,
  verdictTarget,
  type FakeSet,
} from "./fake_state.js";
import type { DraftAccess } from "./fake_draft.js";

export function setOp(d: DraftAccess, verb: Operation["verb"], s: NSet | NMap): void {
  const t = d.requireTable();
  const existing = t.sets.get(s.name);
  const kindMatches = existing?.def.kind === s.kind;
  switch (verb) {
    case "add":
    case "create": {
      if (existing) {
        if (verb === "create") fail("EEXIST", `${existing.def.kind} ${s.name} exists`);
        const old = existing.def;
        if (
          !kindMatches ||
          (old.type ?? old.typeof) !== (s.type ?? s.typeof) ||
          !sameStrings(old.flags, s.flags) ||
          old.timeout !== s.timeout
        )
          fail("EEXIST", `${old.kind} ${s.name} exists with another type or flags`);
        return;
      }
      const def = { ...s };
      delete def.handle;
      if (def.flags) def.flags = [...def.flags];
      const set: FakeSet = { def, handle: d.handle(), elements: new Map() };
      d.own(set);
      t.sets.set(s.name, set);
      return;
    }
    case "delete":
    case "destroy": {
      if (!existing || !kindMatches) {
        if (verb === "delete") fail("ENOENT", `${s.kind} ${s.name} does not exist`);
        return;
      }
      const user = objectUser(d.requireTable(), "sets", s.name);
      if (user) fail("EBUSY", `${s.kind} ${s.name} is used by ${user}`);
      t.sets.delete(s.name);
      return;
    }
    case "flush":
      if (!existing || !kindMatches) fail("ENOENT", `${s.kind} ${s.name} does not exist`);
      d.mutableSet(s.name)!.elements = new Map();
      return;
    default:
      fail("EINVAL", `cannot ${verb} a ${s.kind}`);
  }
}

export function elementOp(d: DraftAccess, verb: Operation["verb"], e: Element): void {
  const kind = e.set !== undefined ? "set" : "map";
  const name = e.set ?? e.map ?? "";
  const existingSet = d.requireTable().sets.get(name);
  if (!existingSet || existingSet.def.kind !== kind) fail("ENOENT", `${kind} ${name} does not exist`);
  const set = d.mutableSet(name)!;
  const key = keyOf(e.key);
  const old = set.elements.get(key);
  switch (verb) {
    case "add":
    case "create": {
      if (e.timeout !== undefined && !set.def.flags?.includes("timeout"))
        fail("EINVAL", `${kind} ${name} has no timeout flag`);
      const value = e.value?.map(unquote);
      if (kind === "map") {
        const target = verdictTarget(value);
        if (target !== undefined && !d.requireTable().chains.has(target))
          fail("ENOENT", `chain ${target} (verdict of element ${key}) does not exist`);
        const counter = isCounterMap(set.def) ? value?.[0] : undefined;
        if (counter !== undefined && !d.requireTable().counters.has(counter))
          fail("ENOENT", `counter ${counter} (value of element ${key}) does not exist`);
      }
      if (old) {
        if (verb === "create") fail("EEXIST", `element ${key} exists`);
        if (kind === "map" && (old.value ?? []).join(" . ") !== (value ?? []).join(" . "))
          fail("EEXIST", `element ${key} exists with another value`);
        return;
      }
      const elem: Element =
        kind === "set"
          ? { kind: "element", set: name, key: e.key.map(unquote) }
          : { kind: "element", map: name, key: e.key.map(unquote) };
      if (value) elem.value = value;
      if (e.comment !== undefined) elem.comment = e.comment;
      if (e.timeout !== undefined) elem.timeout = e.timeout;
      if (e.counter) elem.counter = true;
      d.setElement(set, key, elem);
      return;
    }
    case "delete":
    case "destroy":
      if (!old) {
        if (verb === "delete") fail("ENOENT", `element ${key} does not exist`);
        return;
      }
      d.setElement(set, key, undefined);
      return;
    default:
      fail("EINVAL", `cannot ${verb} an element`);
  }
}
