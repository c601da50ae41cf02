/** Counting the nft calls a backend makes (runs and reads, by table), for the steps benches. */
import { performance } from "node:perf_hooks";
import type { Family, Interface } from "../../src/nftables/index.js";

/** `nft` with every call but newTransaction and forTable counted in `calls` as "<method> <table>". */
export function counted(nft: Interface, calls: string[]): Interface {
  return new Proxy(nft, {
    get(target, prop, receiver): unknown {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== "function") return v;
      if (prop === "forTable") return (f: Family, t: string) => counted(target.forTable(f, t), calls);
      if (prop === "newTransaction") return () => target.newTransaction();
      return (...args: unknown[]) => {
        calls.push(`${String(prop)} ${target.table}`);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/** Wall and CPU time (user + system, this process: in-process libnftables included) of `fn`, ms. */
export async function timedCpu(fn: () => Promise<unknown>): Promise<{ ms: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { ms, cpu: (c.user + c.system) / 1000 };
}
