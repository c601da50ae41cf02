/** Real packets: an echo server in one namespace, a client in another. */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Netns } from "./netns.js";

const SERVER = fileURLToPath(new URL("./echo-server.mjs", import.meta.url));
const CLIENT = fileURLToPath(new URL("./echo-client.mjs", import.meta.url));

export interface EchoServer {
  stop(): void;
}

/** Starts the server and resolves once it is listening (these machines can take seconds). */
export function startEchoServer(
  ns: Netns,
  proto: "tcp" | "udp",
  host: string,
  port: number,
): Promise<EchoServer> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(
      "ip",
      ["netns", "exec", ns.name, process.execPath, SERVER, proto, host, String(port)],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let err = "";
    const timer = setTimeout(
      () => reject(new Error(`echo server in ${ns.name} did not listen: ${err}`)),
      20_000,
    );
    child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout!.on("data", (d: Buffer) => {
      if (d.toString().includes("listening")) {
        clearTimeout(timer);
        resolve({ stop: () => child.kill("SIGKILL") });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`echo server exited (${code}): ${err}`));
    });
  });
}

/**
 * The address the server saw, or undefined if the connection failed within `timeoutMs`. The
 * default is a hang guard, not a deadline: a check that must get through waits for TCP's own SYN
 * retries (1 s, 3 s, 7 s, 15 s) and the UDP client's (every 300 ms), so a lost first packet or a
 * test process starved for seconds on a loaded machine (niced tests beside normal-priority work)
 * is not a failure; with 3 s, it was. A check that must NOT get through passes a short timeout.
 */
export async function echo(
  ns: Netns,
  proto: "tcp" | "udp",
  host: string,
  port: number,
  timeoutMs = 20_000,
): Promise<string | undefined> {
  const r = await ns.run([process.execPath, CLIENT, proto, host, String(port), String(timeoutMs)], {
    timeoutMs: timeoutMs + 10_000,
  });
  const out = r.stdout.trim();
  return r.code === 0 ? out : undefined;
}
