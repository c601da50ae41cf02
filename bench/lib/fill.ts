/**
 * Fills a host with containers through the portmap plugin itself, as a runtime would: one
 * plugin process per container (ADD, prevResult with the container's address, one mapping),
 * `parallel` at a time. Run inside the host namespace (`ip netns exec HOST node --import tsx
 * bench/lib/fill.ts ...`) so the plugins start there without nsenter, like a runtime's do.
 * With `resident`, a resident daemon (docs/resident.md) is started first in the same namespaces
 * (the only callers it serves) and every plugin process is its thin client; the daemon's start
 * is not timed (a host runs it before containers come), its first, cold calls are.
 *
 *   fill.ts BIN FROM TO PARALLEL BACKEND [resident]   (BACKEND: nftables, iptables, or - for none)
 *
 * Prints the elapsed milliseconds, then a JSON line: the CPU ms of the plugin processes
 * (`pluginsCpuMs`), of this driver starting them (`driverCpuMs`) and, with `resident`, the
 * daemon's (`daemonCpuMs`) and what it counted (`served`, `refused`, `skipped`). Container i gets 10.99.<1 + i/256>.<i%256>, host port 10000+i.
 */
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { performance } from "node:perf_hooks";
import { cpuMsOf, startBenchResident } from "./resident.js";

export const fillerAddr = (i: number): string => `10.99.${1 + (i >> 8)}.${i & 255}`;
export const fillerPort = (i: number): number => 10000 + i;

function add(bin: string, i: number, backend: string, env: Record<string, string>): Promise<void> {
  const conf = {
    cniVersion: "1.0.0",
    name: "benchnet",
    type: "portmap",
    ...(backend === "-" ? {} : { backend }),
    runtimeConfig: { portMappings: [{ hostPort: fillerPort(i), containerPort: 80, protocol: "tcp" }] },
    prevResult: {
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", sandbox: `/var/run/netns/fill${i}` }],
      ips: [{ address: `${fillerAddr(i)}/16`, interface: 0 }],
    },
  };
  return new Promise((resolve, reject) => {
    const child = spawn(`${bin}/portmap`, [], {
      env: {
        ...env,
        PATH: process.env["PATH"],
        CNI_COMMAND: "ADD",
        CNI_CONTAINERID: `fill${i}`,
        CNI_NETNS: `/var/run/netns/fill${i}`,
        CNI_IFNAME: "eth0",
        CNI_PATH: bin,
      },
      stdio: ["pipe", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`fill ADD ${i}: ${err}`))));
    child.stdin.end(JSON.stringify(conf));
  });
}

export async function fill(
  bin: string,
  from: number,
  to: number,
  parallel: number,
  backend: string,
  env: Record<string, string> = {},
): Promise<number> {
  const t0 = performance.now();
  let next = from;
  const worker = async (): Promise<void> => {
    while (next < to) await add(bin, next++, backend, env);
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  return performance.now() - t0;
}

if (process.argv[1]?.endsWith("fill.ts")) {
  const [bin, from, to, parallel, backend, mode] = process.argv.slice(2);
  const daemon = mode === "resident" ? await startBenchResident(bin!, tmpdir()) : undefined;
  let ms: number;
  try {
    ms = await fill(bin!, Number(from), Number(to), Number(parallel), backend ?? "-", daemon?.env);
  } catch (e) {
    await daemon?.stop(); // the daemon must not outlive the fill
    throw e;
  }
  // CPU of the fill's plugin processes (the clients, with a daemon) and of the daemon.
  const self = cpuMsOf("self");
  const cpu = { pluginsCpuMs: self.children, daemonCpuMs: daemon?.cpuMs(), driverCpuMs: self.own };
  const counts = await daemon?.stop();
  console.log(ms.toFixed(0));
  console.log(JSON.stringify({ ...cpu, ...counts }));
}
