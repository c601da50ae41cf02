/**
 * One plugin call through the resident daemon, from the plugin executable's side: whether to try,
 * reading stdin once (the in-process fallback gets the same text), and reproducing what the daemon
 * ran: stderr, then stdout, then the exit code, as src/cni/skel.ts pluginMain writes them.
 */
import { readFileSync, writeSync } from "node:fs";
import { callResident, residentSocket } from "./client.js";
import { PROTOCOL_VERSION } from "./protocol.js";

/** The verbs worth a daemon: VERSION is answered before this, and "" prints the plugin's about text. */
const SERVED_VERBS = ["ADD", "DEL", "CHECK", "GC", "STATUS"];

export type Handed = { served: true } | { served: false; stdin?: string };

function writeAll(fd: 1 | 2, bytes: Uint8Array): void {
  for (let off = 0; off < bytes.byteLength;) off += writeSync(fd, bytes, off);
}

/** Hands the call to the daemon when one serves this caller; `served: false` means run it here. */
export async function throughResident(plugin: string): Promise<Handed> {
  if (typeof (globalThis as { Bun?: unknown }).Bun === "undefined") return { served: false };
  const env = process.env;
  if (!SERVED_VERBS.includes(env["CNI_COMMAND"] ?? "")) return { served: false };
  const socket = residentSocket(env);
  if (!socket) return { served: false };
  let stdin: Buffer;
  let cwd: string;
  try {
    stdin = readFileSync(0);
    cwd = process.cwd();
  } catch {
    return { served: false }; // a non-blocking stdin, a deleted cwd: the plugin's own path copes
  }
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) vars[k] = v;
  const out = await callResident(
    socket,
    { v: PROTOCOL_VERSION, plugin, env: vars, cwd, umask: process.umask() },
    stdin,
  );
  if (!out.served) {
    if (env["CNI_NFT_DEBUG"]) writeAll(2, Buffer.from(`cni-nft: resident daemon not used: ${out.why}\n`));
    return { served: false, stdin: stdin.toString("utf8") };
  }
  if ("lost" in out) return answerLost(stdin);
  if (out.stderr.byteLength) writeAll(2, out.stderr);
  if (out.stdout.byteLength) writeAll(1, out.stdout);
  process.exitCode = out.exitCode;
  return { served: true };
}

/**
 * The daemon took the call and ended before answering: it may have done part of it, so running it
 * again here would not be the same call. The runtime's DEL cleans, as after a killed plugin. Also
 * what the C client's `lost` handoff prints (src/resident/thin/call.c), stdin then read here.
 */
export function answerLost(stdin: Buffer = readFileSync(0)): Handed {
  let cniVersion = "1.0.0";
  try {
    const v = (JSON.parse(stdin.toString("utf8")) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === "string" && v !== "") cniVersion = v;
  } catch {
    /* the error is still one */
  }
  const msg = "the cni-nft resident daemon ended before answering; the call may be partly done";
  writeAll(1, Buffer.from(JSON.stringify({ cniVersion, code: 999, msg }, null, 4) + "\n"));
  process.exitCode = 1;
  return { served: true };
}
