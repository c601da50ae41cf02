/**
 * The C client (src/resident/thin/call.c, dist/compiled/cni-nft-client when a cc built it;
 * docs/resident.md) against a scripted daemon on a real Unix socket: the request it sends is the
 * one the Bun client sends (every environment byte escaped as JSON.stringify escapes what Bun
 * decodes, non-UTF-8 bytes as U+FFFD the way TextDecoder replaces them), the answer's stderr,
 * stdout and exit code come out as sent, a daemon that accepts and goes away gives the CNI error
 * code 999 without running the plugin, and a refusal runs it in-process with the stdin already read.
 * No plugin touches the host: the in-process call names a namespace that does not exist.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { tempDir } from "../helpers/cni.js";
import { COMPILED } from "../helpers/resident.js";
import {
  FrameKind,
  FrameReader,
  encodeFrame,
  encodeResult,
  type Frame,
} from "../../src/resident/protocol.js";

const CLIENT = join(COMPILED, "cni-nft-client");
// The Bun client is an executable of tens of megabytes; the C one of a few dozen kilobytes.
const skip =
  existsSync(CLIENT) && statSync(CLIENT).size < 1 << 20 ? false : "no C client (npm run build with a cc)";
const dir = tempDir("resident-cclient");
after(() => dir.remove());

type Answer = (sock: Socket) => void;

/** Serves one connection with `answer` once the request is whole; resolves with the request's frames. */
async function daemon(path: string, answer: Answer): Promise<{ frames: Promise<Frame[]>; close(): void }> {
  let got: (f: Frame[]) => void = () => undefined;
  const frames = new Promise<Frame[]>((resolve) => (got = resolve));
  const server = createServer((sock) => {
    const reader = new FrameReader();
    const all: Frame[] = [];
    sock.on("data", (chunk) => {
      all.push(...reader.push(chunk));
      if (all.length === 2) {
        got(all);
        answer(sock);
      }
    });
    sock.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { frames, close: () => server.close() };
}

/** Runs the client through sh so that the environment can hold bytes a JS string cannot. */
function client(
  env: string,
  stdin: string,
  extra: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("/bin/sh", ["-c", `exec env ${env} "${CLIENT}"`], {
      env: { PATH: process.env["PATH"]!, CNI_COMMAND: "ADD", CNI_NFT_PLUGIN: "tuning", ...extra },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

// What printf writes for X: quotes, a backslash, control characters, DEL, bytes that are not UTF-8
// (a stray continuation, an impossible byte, a truncated sequence), a surrogate's encoding, and
// multi-byte characters.
const X_PRINTF = String.raw`q\042b\134n\n\t\001\037\177 \200 \377\376 \342\202 \355\240\200 é€😀`;
const X_BYTES = Buffer.from([
  ...Buffer.from('q"b\\n\n\t'),
  1,
  0x1f,
  0x7f,
  0x20,
  0x80,
  0x20,
  0xff,
  0xfe,
  0x20,
  0xe2,
  0x82,
  0x20,
  0xed,
  0xa0,
  0x80,
  0x20,
  ...Buffer.from("é€😀"),
]);

test(
  "the request: the header the Bun client sends, then stdin as read; the answer written as sent",
  { skip },
  async () => {
    const path = join(dir.path, "served.sock");
    const d = await daemon(path, (sock) => {
      sock.write(encodeFrame(FrameKind.Accepted, ""));
      sock.end(encodeResult(3, "the stdout\n", "the stderr\n"));
    });
    const stdin = "x".repeat(300 * 1024);
    try {
      const r = await client(`"X=$(printf '${X_PRINTF}')" "CNI_NFT_RESIDENT_HANDOFF=here"`, stdin, {
        CNI_NFT_RESIDENT_SOCKET: path,
      });
      assert.deepEqual(r, { code: 3, stdout: "the stdout\n", stderr: "the stderr\n" });
      const [header, body] = await d.frames;
      assert.equal(header!.kind, FrameKind.RequestHeader);
      const text = new TextDecoder().decode(header!.payload);
      const x = new TextDecoder().decode(X_BYTES);
      assert.ok(text.includes(`"X":${JSON.stringify(x)}`), text);
      const h = JSON.parse(text) as { v: number; plugin: string; env: Record<string, string>; cwd: string };
      assert.equal(h.v, 1);
      assert.equal(h.plugin, "tuning");
      assert.equal(h.cwd, process.cwd());
      assert.equal(h.env["X"], x);
      // Removed as src/bin/invocation.ts removes them before the Bun client builds its header.
      assert.equal(h.env["CNI_NFT_PLUGIN"], undefined);
      assert.equal(h.env["CNI_NFT_RESIDENT_HANDOFF"], undefined);
      assert.equal(body!.kind, FrameKind.Stdin);
      assert.equal(Buffer.from(body!.payload).toString(), stdin);
    } finally {
      d.close();
    }
  },
);

test(
  "accepted, then the daemon goes away: code 999 with stdin's cniVersion, the plugin not run",
  { skip },
  async () => {
    const path = join(dir.path, "lost.sock");
    const d = await daemon(path, (sock) => sock.end(encodeFrame(FrameKind.Accepted, "")));
    try {
      const r = await client("", JSON.stringify({ cniVersion: "0.4.0", name: "n", type: "tuning" }), {
        CNI_NFT_RESIDENT_SOCKET: path,
      });
      assert.equal(r.code, 1);
      assert.equal(r.stderr, "");
      assert.deepEqual(JSON.parse(r.stdout), {
        cniVersion: "0.4.0",
        code: 999,
        msg: "the cni-nft resident daemon ended before answering; the call may be partly done",
      });
    } finally {
      d.close();
    }
  },
);

test(
  "refused: the plugin runs in-process with the stdin the client read, as without a daemon",
  { skip },
  async () => {
    const path = join(dir.path, "refused.sock");
    const d = await daemon(path, (sock) => sock.end(encodeFrame(FrameKind.Refused, "a test")));
    const bad = JSON.stringify({
      cniVersion: "0.4.0",
      name: "n",
      type: "tuning",
      pad: "p".repeat(200 * 1024),
    });
    try {
      const env = { CNI_CONTAINERID: "c", CNI_NETNS: "/nonexistent", CNI_IFNAME: "eth0", CNI_PATH: COMPILED };
      const served = await client("", bad, { ...env, CNI_NFT_RESIDENT_SOCKET: path });
      const alone = await client("", bad, { ...env, CNI_NFT_RESIDENT: "off" });
      assert.equal(alone.code, 1);
      // The error names the missing namespace in stdin's version: the plugin read all of stdin.
      assert.match(alone.stdout, /"cniVersion": "0.4.0",\n {4}"code": 4,/);
      assert.deepEqual(served, alone);
    } finally {
      d.close();
    }
  },
);
