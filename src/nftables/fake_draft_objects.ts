/**
 * The fake's stateful objects outside chains and sets: named counters (reset, EBUSY while a rule
 * or map uses one) and flowtables. Operations of a {@link Draft}.
 */
import type { Counter, Flowtable, Operation } from "./types.js";
import { fail, objectUser } from "./fake_state.js";
import type { DraftAccess } from "./fake_draft.js";

export function counterOp(d: DraftAccess, verb: Operation["verb"], c: Counter): void {
  const t = d.requireTable();
  const existing = t.counters.get(c.name);
  switch (verb) {
    case "add":
    case "create": {
      if (existing) {
        if (verb === "create") fail("EEXIST", `counter ${c.name} exists`);
        return;
      }
      const counter: Counter = {
        kind: "counter",
        name: c.name,
        packets: 0,
        bytes: 0,
        handle: d.handle(),
      };
      if (c.comment !== undefined) counter.comment = c.comment;
      t.counters.set(c.name, counter);
      return;
    }
    case "delete":
    case "destroy": {
      if (!existing) {
        if (verb === "delete") fail("ENOENT", `counter ${c.name} does not exist`);
        return;
      }
      const user = objectUser(d.requireTable(), "counters", c.name);
      if (user) fail("EBUSY", `counter ${c.name} is used by ${user}`);
      t.counters.delete(c.name);
      return;
    }
    case "reset":
      if (!existing) fail("ENOENT", `counter ${c.name} does not exist`);
      t.counters.set(c.name, { ...existing, packets: 0, bytes: 0 });
      return;
    default:
      fail("EINVAL", `cannot ${verb} a counter`);
  }
}

export function flowtableOp(d: DraftAccess, verb: Operation["verb"], f: Flowtable): void {
  const t = d.requireTable();
  const existing = t.flowtables.get(f.name);
  switch (verb) {
    case "add":
    case "create": {
      if (existing) {
        if (verb === "create") fail("EEXIST", `flowtable ${f.name} exists`);
        return;
      }
      const ft: Flowtable & { handle: number } = {
        kind: "flowtable",
        name: f.name,
        priority: f.priority ?? "filter",
        handle: d.handle(),
      };
      if (f.devices?.length) ft.devices = [...f.devices];
      t.flowtables.set(f.name, ft);
      return;
    }
    case "delete":
    case "destroy": {
      if (!existing) {
        if (verb === "delete") fail("ENOENT", `flowtable ${f.name} does not exist`);
        return;
      }
      const user = objectUser(d.requireTable(), "flowtables", f.name);
      if (user) fail("EBUSY", `flowtable ${f.name} is used by ${user}`);
      t.flowtables.delete(f.name);
      return;
    }
    default:
      fail("EINVAL", `cannot ${verb} a flowtable`);
  }
}
