/**
 * Long-lived flows for tests that change the host while traffic runs: a server and a client each
 * in a namespace, the client counting echoes of a message sent every few milliseconds.
 *
 * Only the client runs at real-time priority (`chrt -f 20`, so a loaded machine does not fake
 * gaps in what it measures); the servers run at normal priority. Every flow process is bounded so
 * that nothing, a packet loop included, can take the machine's CPUs from everything else: at most
 * FLOW_CPU_SECONDS of CPU (RLIMIT_CPU), and the real-time client at most RT_BURST_US on the CPU
 * without sleeping (RLIMIT_RTTIME; it sleeps between messages). Each exits when its stdin ends
 * (the test process is gone); stopFlows() ends whatever a test left running. Each process's CPU
 * time is printed when it stops.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Netns } from "./netns.js";

const SERVER = fileURLToPath(new URL("./flow-server.mjs", import.meta.url));
const CLIENT = fileURLToPath(new URL("./flow-client.mjs", import.meta.url));
/** A flow process uses well under a second; a loop is stopped (SIGXCPU) after this much. */
const FLOW_CPU_SECONDS = 30;
/** Soft and hard limits (µs) on real-time CPU without a blocking call: a client sleeps every 10 ms. */
const RT_BURST_US = "500000:1000000";
const CLOCK_TICKS_PER_SECOND = 100;

export interface FlowStats {
  sent: number;
  received: number;
  errors: string[];
  maxGapMs: number;
  /** Messages never echoed: when each was sent (ms after the first) of how long the flow ran. */
  missing: { seq: number; sentMs: number; ofMs: number }[];
  /** CPU time (user + system) the client used. */
  cpuMs: number;
}

export interface FlowServer {
  /** Kills the server; what it said on stderr (a loop it broke) and the CPU time it used. */
  stop(): { stderr: string; cpuMs: number };
}

const running = new Set<ChildProcess>();

/** User + system CPU of a running process (its /proc stat), undefined once it is gone. */
function cpuMsOf(pid: number | undefined): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

function start(
  ns: Netns,
  args: string[],
  ready: string,
  realtime: boolean,
): Promise<{ child: ChildProcess; stderr: () => string }> {
  const limits = [`--cpu=${FLOW_CPU_SECONDS}`, ...(realtime ? [`--rttime=${RT_BURST_US}`] : [])];
  const priority = realtime ? ["chrt", "-f", "20"] : [];
  return new Promise((resolve, reject) => {
    const child = spawn(
      "ip",
      ["netns", "exec", ns.name, "prlimit", ...limits, ...priority, process.execPath, ...args],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    running.add(child);
    child.on("exit", () => running.delete(child));
    let err = "";
    const timer = setTimeout(() => {
      // Never left behind: a server that listens late would outlive the test and hold it open.
      child.kill("SIGKILL");
      reject(new Error(`${args.join(" ")} in ${ns.name}: not ${ready}: ${err}`));
    }, 20_000);
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.stdout.on("data", (d: Buffer) => {
      if (d.toString().includes(ready)) {
        clearTimeout(timer);
        resolve({ child, stderr: () => err });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(" ")} exited (${code}): ${err}`));
    });
  });
}

const label = (role: string, ns: Netns, args: string[]): string =>
  `flow ${role} ${args.slice(1).join(" ")} in ${ns.name}`;

export async function startFlowServer(
  ns: Netns,
  proto: "tcp" | "udp",
  host: string,
  port: number,
): Promise<FlowServer> {
  const args = [SERVER, proto, host, String(port)];
  const { child, stderr } = await start(ns, args, "listening", false);
  child.removeAllListeners("exit");
  child.on("exit", () => running.delete(child));
  return {
    stop: () => {
      const cpuMs = cpuMsOf(child.pid) ?? NaN;
      child.kill("SIGKILL");
      console.log(`# ${label("server", ns, args)}: ${cpuMs} ms CPU`);
      return { stderr: stderr(), cpuMs };
    },
  };
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
  const args = [CLIENT, proto, host, String(port), String(intervalMs)];
  const { child } = await start(ns, args, "flowing", true);
  child.removeAllListeners("exit");
  child.on("exit", () => running.delete(child));
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  return {
    stop: () =>
      new Promise((resolve, reject) => {
        child.on("exit", () => {
          const line = out.split("\n").find((l) => l.startsWith("{"));
          if (!line) return reject(new Error(`flow client printed no summary: ${out}`));
          const stats = JSON.parse(line) as FlowStats;
          console.log(`# ${label("client", ns, args)}: ${stats.cpuMs} ms CPU`);
          resolve(stats);
        });
        child.stdin!.write("stop\n");
      }),
  };
}

/** Kills every flow process still running (a test that failed before stopping its flows). */
export function stopFlows(): void {
  for (const child of running) child.kill("SIGKILL");
  running.clear();
}
