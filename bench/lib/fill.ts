/**
 * Fills a host with containers through the portmap plugin itself, as a runtime would: one
 * plugin process per container (ADD, prevResult with the container's address, one mapping),
 * `parallel` at a time. Run inside the host namespace (`ip netns exec HOST node --import tsx
 * bench/lib/fill.ts ...`) so the plugins start there without nsenter, like a runtime's do.
 *
 *   fill.ts BIN FROM TO PARALLEL BACKEND   (BACKEND: nftables, iptables, or - for none)
 *
 * Prints the elapsed milliseconds. Container i gets 10.99.<1 + i/256>.<i%256>, host port 10000+i.
 */
import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";

export const fillerAddr = (i: number): string => `10.99.${1 + (i >> 8)}.${i & 255}`;
export const fillerPort = (i: number): number => 10000 + i;

function add(bin: string, i: number, backend: string): Promise<void> {
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
): Promise<number> {
  const t0 = performance.now();
  let next = from;
  const worker = async (): Promise<void> => {
    while (next < to) await add(bin, next++, backend);
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  return performance.now() - t0;
}

if (process.argv[1]?.endsWith("fill.ts")) {
  const [bin, from, to, parallel, backend] = process.argv.slice(2);
  const ms = await fill(bin!, Number(from), Number(to), Number(parallel), backend ?? "-");
  console.log(ms.toFixed(0));
}
