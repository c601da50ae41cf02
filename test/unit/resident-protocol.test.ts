/**
 * The resident daemon's framing, request checks, orders and the client's choice of socket
 * (docs/resident.md); the daemon itself runs on the kernel in test/integration/resident.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  FrameKind,
  FrameReader,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  ProtocolError,
  encodeFrame,
  encodeRequest,
  encodeResult,
  parseRequestHeader,
  type RequestHeader,
} from "../../src/resident/protocol.js";
import { KeyedQueue, StateGate } from "../../src/resident/order.js";
import { callResident, residentSocket } from "../../src/resident/client.js";
import { whyNotServe, whyNotServeEnv, type ProcessIdentity } from "../../src/resident/peer.js";
import { PLUGIN_NAMES } from "../../src/bin/names.js";
import { PLUGINS } from "../../src/bin/plugins.js";

const header: RequestHeader = {
  v: PROTOCOL_VERSION,
  plugin: "bridge",
  env: { CNI_COMMAND: "ADD", PATH: "/usr/bin" },
  cwd: "/",
  umask: 0o22,
};

test("a request survives any cutting of the byte stream into chunks", () => {
  const stdin = new TextEncoder().encode('{"cniVersion":"1.0.0","name":"ü"}');
  const bytes = encodeRequest(header, stdin);
  for (const size of [1, 2, 3, 5, 7, 64, bytes.byteLength]) {
    const reader = new FrameReader();
    const frames = [];
    for (let off = 0; off < bytes.byteLength; off += size)
      frames.push(...reader.push(bytes.subarray(off, off + size)));
    assert.equal(frames.length, 2, `chunks of ${size}`);
    assert.deepEqual(parseRequestHeader(frames[0]!), header);
    assert.equal(frames[1]!.kind, FrameKind.Stdin);
    assert.deepEqual(frames[1]!.payload, stdin);
    assert.equal(reader.pending, 0);
  }
});

test("a result is three frames: exit code, stdout, stderr, bytes kept exactly", () => {
  const frames = new FrameReader().push(encodeResult(7, '{"code": 7}\n', "stack\n"));
  assert.deepEqual(
    frames.map((f) => f.kind),
    [FrameKind.ResultHeader, FrameKind.Stdout, FrameKind.Stderr],
  );
  assert.equal(new TextDecoder().decode(frames[0]!.payload), '{"exitCode":7}');
  assert.equal(new TextDecoder().decode(frames[1]!.payload), '{"code": 7}\n');
  assert.equal(new TextDecoder().decode(frames[2]!.payload), "stack\n");
  const emptyOut = new FrameReader().push(encodeResult(0, "", ""));
  assert.deepEqual(
    emptyOut.map((f) => f.payload.byteLength),
    [14, 0, 0],
  );
});

test("a frame length of 0 or past the limit is refused, whatever follows", () => {
  for (const len of [0, MAX_FRAME_BYTES + 1, 0xffffffff]) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setUint32(0, len);
    assert.throws(() => new FrameReader().push(b), ProtocolError);
  }
  assert.throws(() => encodeFrame(FrameKind.Stdin, new Uint8Array(MAX_FRAME_BYTES)), ProtocolError);
});

test("request headers: every field checked", () => {
  const frame = (h: unknown): { kind: number; payload: Uint8Array } => ({
    kind: FrameKind.RequestHeader,
    payload: new TextEncoder().encode(JSON.stringify(h)),
  });
  const bad: unknown[] = [
    { ...header, v: 2 },
    { ...header, plugin: "../bridge" },
    { ...header, plugin: 3 },
    { ...header, cwd: "relative" },
    { ...header, umask: 0o1000 },
    { ...header, umask: 1.5 },
    { ...header, env: [] },
    { ...header, env: { A: 1 } },
    { ...header, env: { "A=B": "c" } },
    "text",
  ];
  for (const h of bad) assert.throws(() => parseRequestHeader(frame(h)), ProtocolError, JSON.stringify(h));
  assert.throws(
    () => parseRequestHeader({ kind: FrameKind.Stdin, payload: new Uint8Array() }),
    ProtocolError,
  );
  assert.throws(
    () => parseRequestHeader({ kind: FrameKind.RequestHeader, payload: new TextEncoder().encode("{") }),
    ProtocolError,
  );
});

const me: ProcessIdentity = {
  net: "net:[1]",
  mnt: "mnt:[2]",
  user: "user:[3]",
  root: "/",
  exe: "8:1:99",
  capEff: "000001ffffffffff",
  uid: 0,
};

test("a caller is served only when namespaces, root, user, capabilities and executable are the daemon's", () => {
  assert.equal(whyNotServe(me, { ...me }), undefined);
  for (const [k, v] of Object.entries({
    net: "net:[9]",
    mnt: "mnt:[9]",
    user: "user:[9]",
    root: "/chroot",
    uid: 1000,
    capEff: "0",
    exe: "8:1:100",
  }))
    assert.ok(whyNotServe(me, { ...me, [k]: v }), k);
  assert.match(whyNotServe(me, { ...me, net: "net:[9]" })!, /another network namespace/);
  // The same build's client executable is served as the daemon's own; another client is not.
  assert.equal(whyNotServe(me, { ...me, exe: "8:1:100" }, ["8:1:99", "8:1:100"]), undefined);
  assert.match(whyNotServe(me, { ...me, exe: "8:1:101" }, ["8:1:100"])!, /another build/);
  assert.ok(whyNotServe(me, { ...me, exe: "8:1:100", net: "net:[9]" }, ["8:1:100"]));
  assert.equal(whyNotServeEnv({ CNI_NFT_LIBNFTABLES: undefined }, { PATH: "/x" }), undefined);
  assert.match(whyNotServeEnv({}, { CNI_NFT_LIBNFTABLES: "off" })!, /CNI_NFT_LIBNFTABLES/);
});

test("calls of one attachment run one after the other in arrival order; others do not wait", async () => {
  const q = new KeyedQueue();
  const events: string[] = [];
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const first = q.run("a", async () => {
    events.push("a1 start");
    await held;
    events.push("a1 end");
  });
  const second = q.run("a", () => {
    events.push("a2");
    return Promise.resolve();
  });
  const failing = q.run("a", () => Promise.reject(new Error("x")));
  const third = q.run("a", () => {
    events.push("a3 after a failure");
    return Promise.resolve();
  });
  await q.run("b", () => {
    events.push("b");
    return Promise.resolve();
  });
  await q.run(undefined, () => {
    events.push("unordered");
    return Promise.resolve();
  });
  assert.deepEqual(events, ["a1 start", "b", "unordered"]);
  release();
  await Promise.all([first, second, third, failing.catch(() => undefined)]);
  assert.deepEqual(events.slice(3), ["a1 end", "a2", "a3 after a failure"]);
  await new Promise((r) => setImmediate(r));
  assert.equal(q.size, 0, "no key kept after its calls");
});

test("the state gate switches working directory and umask only between calls, in arrival order", async () => {
  const applied: string[] = [];
  const gate = new StateGate((k) => {
    if (k === "bad") throw new Error("no such directory");
    applied.push(k);
  });
  await gate.enter("x");
  await gate.enter("x"); // same state: admitted at once
  let yIn = false;
  const y = gate.enter("y").then(() => (yIn = true));
  let xLater = false;
  const x2 = gate.enter("x").then(() => (xLater = true)); // waits behind y: no starvation
  await new Promise((r) => setImmediate(r));
  assert.equal(yIn, false);
  assert.equal(xLater, false);
  gate.leave();
  gate.leave();
  await y;
  assert.equal(xLater, false);
  assert.deepEqual(applied, ["x", "y"]);
  const bad = gate.enter("bad");
  gate.leave();
  await x2;
  gate.leave();
  await assert.rejects(bad, /no such directory/);
  assert.deepEqual(applied, ["x", "y", "x"]);
  assert.equal(gate.active, 0);
});

test("the client uses only a root-owned socket in a directory nobody else can write to", () => {
  const dir = mkdtempSync(join(tmpdir(), "cni-nft-resident-unit-"));
  try {
    const socket = join(dir, "plugins.sock");
    assert.equal(residentSocket({ CNI_NFT_RESIDENT_SOCKET: socket }), undefined, "absent");
    writeFileSync(socket, "");
    assert.equal(residentSocket({ CNI_NFT_RESIDENT_SOCKET: socket }), undefined, "not a socket");
    assert.equal(residentSocket({ CNI_NFT_RESIDENT_SOCKET: "/tmp/x.sock" }), undefined, "in /tmp");
    assert.equal(residentSocket({ CNI_NFT_RESIDENT: "off" }), undefined);
    chmodSync(dir, 0o755);
    assert.equal(residentSocket({ CNI_NFT_RESIDENT_SOCKET: socket }), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the client outside Bun never connects: not served", async () => {
  assert.deepEqual(await callResident("/nonexistent", header, new Uint8Array()), {
    served: false,
    why: "not on Bun",
  });
});

test("the client path knows every plugin by name, and nothing else", () => {
  assert.deepEqual([...PLUGIN_NAMES].sort(), Object.keys(PLUGINS).sort());
});
