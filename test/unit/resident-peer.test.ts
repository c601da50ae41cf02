/**
 * Whom the resident daemon serves as its own build (src/resident/peer.ts): the client and fronts
 * beside it only where their bytes are what the build wrote under that name (the build's table,
 * name -> SHA-256, compiled into the binary); every file of such a name counts for noticing an
 * upgrade.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { besideIdentities, buildClients, clientIdentities } from "../../src/resident/peer.js";

const sha = (s: string): string => createHash("sha256").update(s).digest("hex");

test("only files with the bytes the build wrote under their name are the build's clients", () => {
  const dir = mkdtempSync(join(tmpdir(), "cni-nft-peer-"));
  try {
    const files = {
      "cni-nft-client": "client",
      tuning: "front",
      bridge: "someone else's bridge",
      tap: "tap",
    };
    for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), body);
    writeFileSync(join(dir, "not-a-plugin"), "front");
    const id = (name: string): string => {
      const st = statSync(join(dir, name));
      return `${st.dev}:${st.ino}`;
    };
    const table = {
      "cni-nft-client": sha("client"),
      tuning: sha("front"),
      bridge: sha("the build's bridge"),
      // Written by the build, gone from the directory since.
      portmap: sha("portmap"),
    };
    // tap has no entry (a sh front is never a caller's executable), bridge other bytes.
    assert.deepEqual(clientIdentities(dir, table), [id("cni-nft-client"), id("tuning")]);
    assert.deepEqual(clientIdentities(dir, {}), []);
    assert.deepEqual(
      besideIdentities(dir).sort(),
      ["cni-nft-client", "tuning", "bridge", "tap"].map(id).sort(),
      "every file of such a name, for noticing an upgrade",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("under Node there is no build's table: no client is the build's", () => {
  assert.deepEqual(buildClients(), {});
  assert.deepEqual(clientIdentities(), []);
});
