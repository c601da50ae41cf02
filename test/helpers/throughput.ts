/** Timed TCP transfers between namespaces, to prove rate limits with real packets. */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Netns } from "./netns.js";

const SERVER = fileURLToPath(new URL("./sink-server.mjs", import.meta.url));
const CLIENT = fileURLToPath(new URL("./sink-client.mjs", import.meta.url));

export interface Transfer {
  bytes: number;
  /** From the first byte received to the last. */
  ms: number;
  /** Bits per second over that time. */
  rate: number;
}

/**
 * Sends `bytes` from `from` to `host:port` served in `to`, and resolves with what the receiver
 * measured. The server is started first and the client only once it listens.
 */
export async function timedTransfer(
  from: Netns,
  to: Netns,
  host: string,
  port: number,
  bytes: number,
): Promise<Transfer> {
  const server = spawn(
    "ip",
    ["netns", "exec", to.name, process.execPath, SERVER, host, String(port), String(bytes)],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let out = "";
  let err = "";
  const done = new Promise<Transfer>((resolve, reject) => {
    const timer = setTimeout(() => {
      server.kill("SIGKILL");
      reject(new Error(`transfer to ${host}:${port} timed out: ${err}`));
    }, 60_000);
    server.stderr.on("data", (d: Buffer) => (err += d.toString()));
    server.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("listening\n")) {
        out = out.replace("listening\n", "");
        spawn(
          "ip",
          ["netns", "exec", from.name, process.execPath, CLIENT, host, String(port), String(bytes)],
          {
            stdio: "ignore",
          },
        );
      }
    });
    server.on("exit", (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`sink exited ${code}: ${err}`));
      const r = JSON.parse(out.trim()) as { bytes: number; first: number; ms: number };
      // The first chunk arrived at the start of the timing: it was not paced.
      resolve({ bytes: r.bytes, ms: r.ms, rate: ((r.bytes - r.first) * 8 * 1000) / r.ms });
    });
  });
  return done;
}
