/**
 * bench/chain.ts's --only: flavours by key, exactly. Labels contain commas ("cni-nft nftables,
 * resident"), so matching pieces of labels picked flavours nobody asked for.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { FLAVOUR_KEYS, chooseFlavours, flavours } from "../../bench/lib/chain-flavours.js";

const all = flavours({ ours: "/x/dist/compiled", upstreamCurrent: "/up", baseline: "/base" }, "/store");

test("every key names one flavour, and every flavour of a full run has a key of its own", () => {
  assert.deepEqual(all.map((f) => f.key).sort(), Object.keys(FLAVOUR_KEYS).sort());
  for (const f of all) assert.equal(f.label, FLAVOUR_KEYS[f.key as keyof typeof FLAVOUR_KEYS].label);
});

test("--only takes keys exactly, in the run's order", () => {
  const keys = (only?: string): string[] | string => {
    const got = chooseFlavours(all, only);
    return typeof got === "string" ? got : got.map((f) => f.key);
  };
  assert.deepEqual(keys("nft-resident"), ["nft-resident"]);
  assert.deepEqual(keys("ipt-resident,upstream-1.1.1, nft"), ["upstream-1.1.1", "nft", "ipt-resident"]);
  assert.equal((keys() as string[]).length, all.length);
});

test("a label, a piece of one or an unknown key is refused with the keys listed", () => {
  for (const only of ["cni-nft nftables, resident", "resident", "nft,upstream"]) {
    const got = chooseFlavours(all, only);
    assert.equal(typeof got, "string", only);
    assert.match(
      got as string,
      /: not a flavour key \(keys: upstream-1\.1\.1, ipt, nft, nft-resident, baseline,/,
    );
  }
});

test("a key whose flavour the run lacks says what it needs", () => {
  const bare = flavours({ ours: "/x/dist/bin" }, "/store");
  assert.equal(
    chooseFlavours(bare, "baseline"),
    "--only baseline: not in this run (it needs --baseline DIR)",
  );
  assert.equal(
    chooseFlavours(bare, "nft-resident"),
    "--only nft-resident: not in this run (it needs the compiled plugins)",
  );
  assert.match(chooseFlavours(bare, "upstream-current") as string, /needs --upstream-current DIR/);
});
