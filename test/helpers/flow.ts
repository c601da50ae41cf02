/**
 * Long-lived flows for tests that change the host while traffic runs: a server and a client each
 * in a namespace, at real-time priority (`chrt -f 20`, so a loaded machine does not fake gaps),
 * the client counting echoes of a message sent every few milliseconds.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Netns } from "./netns.js";

const SERVER = fileURLToPath(new URL("./flow-server.mjs", import.meta.url));
const CLIENT = fileURLToPath(new URL("./flow-client.mjs", import.meta.url));

export interface FlowStats {
  sent: number;
  received: number;
  errors: string[];
  maxGapMs: number;
  /** Messages never echoed: when each was sent (ms after the first) of how long the flow ran. */
  missing: { seq: number; sentMs: number; ofMs: number }[];
}

function start(ns: Netns, args: string[], ready: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn("ip", ["netns", "exec", ns.name, "chrt", "-f", "20", process.execPath, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let err = "";
    const timer = setTimeout(
      () => reject(new Error(`${args.join(" ")} in ${ns.name}: not ${ready}: ${err}`)),
      20_000,
    );
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout.on("data", (d: Buffer) => {
      if (d.toString().includes(ready)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(" ")} exited (${code}): ${err}`));
    });
  });
}

export async function startFlowServer(
  ns: Netns,
  proto: "tcp" | "udp",
  host: string,
  port: number,
): Promise<{ stop(): void }> {
  const child = await start(ns, [SERVER, proto, host, String(port)], "listening");
  child.removeAllListeners("exit");
  return { stop: () => child.kill("SIGKILL") };
}

export interface Flow {
  /** Stops sending, waits for echoes in flight, and returns what was counted. */
  stop(): Promise<FlowStats>;
}

export async function startFlow(
  ns: Netns,
  proto: "tcp" | "udp",
  host: string,
  port: number,
  intervalMs = 10,
): Promise<Flow> {
  const child = await start(ns, [CLIENT, proto, host, String(port), String(intervalMs)], "flowing");
  child.removeAllListeners("exit");
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  return {
    stop: () =>
      new Promise((resolve, reject) => {
        child.on("exit", () => {
          const line = out.split("\n").find((l) => l.startsWith("{"));
          if (line) resolve(JSON.parse(line) as FlowStats);
          else reject(new Error(`flow client printed no summary: ${out}`));
        });
        child.stdin!.write("stop\n");
      }),
  };
}
