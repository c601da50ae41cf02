/**
 * A runtime's chain (bridge -> portmap -> firewall, optionally tuning) run through our plugins
 * inside a throwaway host namespace, the way libcni runs it: ADD in order with prevResult
 * threaded, DEL in reverse with the final result (or without one, as after a lost ADD). Used by
 * the reliability tests (parallel ADDs, crash safety, soak) and bench/soak.ts.
 */
import { OUR_BIN, cni, type CniCall, type CniResult } from "./cni.js";
import type { Netns } from "./netns.js";

export type Backend = "iptables" | "nftables";

export interface ChainOptions {
  /** Network name; also the bridge name's stem. */
  name: string;
  backend: Backend;
  dataDir: string;
  /** host-local subnet; default 10.200.0.0/16. */
  subnet?: string;
  /** Add tuning at the end (podman's chain). */
  tuning?: boolean;
}

export type Conf = Record<string, unknown>;

export function chainConfs(o: ChainOptions): Conf[] {
  const confs: Conf[] = [
    {
      type: "bridge",
      bridge: `br${o.name}`.slice(0, 15),
      isGateway: true,
      ipMasq: true,
      hairpinMode: true,
      ipMasqBackend: o.backend,
      ipam: {
        type: "host-local",
        dataDir: o.dataDir,
        ranges: [[{ subnet: o.subnet ?? "10.200.0.0/16" }]],
        routes: [{ dst: "0.0.0.0/0" }],
      },
    },
    { type: "portmap", capabilities: { portMappings: true }, backend: o.backend },
    { type: "firewall", backend: o.backend },
  ];
  if (o.tuning) confs.push({ type: "tuning" });
  return confs.map((c) => ({ cniVersion: "1.0.0", name: o.name, ...c }));
}

export interface Attachment {
  containerId: string;
  netns: string;
  /** Host port mapped to container port 80, when any. */
  hostPort?: number;
}

export interface ChainStep {
  plugin: string;
  result: CniResult;
}

function withRuntimeConfig(conf: Conf, a: Attachment): Conf {
  if (conf["type"] !== "portmap" || a.hostPort === undefined) return conf;
  return {
    ...conf,
    runtimeConfig: { portMappings: [{ hostPort: a.hostPort, containerPort: 80, protocol: "tcp" }] },
  };
}

/**
 * ADD through the chain; stops at the first failing plugin. Returns the final result (undefined
 * when a plugin failed) and every step's output.
 */
export async function chainAdd(
  host: Netns,
  confs: Conf[],
  a: Attachment,
  opts: { wrap?: (plugin: string) => string[] | undefined; call?: Partial<CniCall> } = {},
): Promise<{ result: unknown; steps: ChainStep[]; failed?: ChainStep }> {
  let prev: unknown;
  const steps: ChainStep[] = [];
  for (const base of confs) {
    const conf = withRuntimeConfig(base, a);
    const plugin = String(conf["type"]);
    const input = prev !== undefined ? { ...conf, prevResult: prev } : conf;
    const r = await cni(host, plugin, "ADD", input, {
      ...opts.call,
      containerId: a.containerId,
      netns: a.netns,
      wrap: opts.wrap?.(plugin),
    });
    const step = { plugin, result: r };
    steps.push(step);
    if (r.code !== 0) return { result: undefined, steps, failed: step };
    prev = r.json;
  }
  return { result: prev, steps };
}

/**
 * DEL in reverse order, every plugin even after a failure (as libcni does not: it stops).
 * Returns the failures; `steps` receives every step.
 */
export async function chainDel(
  host: Netns,
  confs: Conf[],
  a: Attachment,
  prevResult?: unknown,
  call: Partial<CniCall> = {},
  steps?: ChainStep[],
): Promise<ChainStep[]> {
  const failures: ChainStep[] = [];
  for (const base of [...confs].reverse()) {
    const conf = withRuntimeConfig(base, a);
    const plugin = String(conf["type"]);
    const input = prevResult !== undefined ? { ...conf, prevResult } : conf;
    const r = await cni(host, plugin, "DEL", input, { ...call, containerId: a.containerId, netns: a.netns });
    steps?.push({ plugin, result: r });
    if (r.code !== 0) failures.push({ plugin, result: r });
  }
  return failures;
}

/** CHECK in order with the final result as prevResult, every plugin; returns the failures. */
export async function chainCheck(
  host: Netns,
  confs: Conf[],
  a: Attachment,
  prevResult: unknown,
): Promise<ChainStep[]> {
  const failures: ChainStep[] = [];
  for (const base of confs) {
    const conf = withRuntimeConfig(base, a);
    const plugin = String(conf["type"]);
    const r = await cni(
      host,
      plugin,
      "CHECK",
      { ...conf, prevResult },
      { containerId: a.containerId, netns: a.netns },
    );
    if (r.code !== 0) failures.push({ plugin, result: r });
  }
  return failures;
}

/** GC of every plugin of the chain with the attachments still valid. */
export async function chainGc(
  host: Netns,
  confs: Conf[],
  valid: Attachment[],
  call: Partial<CniCall> = {},
): Promise<ChainStep[]> {
  const failures: ChainStep[] = [];
  const attachments = valid.map((a) => ({ containerID: a.containerId, ifname: "eth0" }));
  for (const conf of confs) {
    const plugin = String(conf["type"]);
    const input = { ...conf, cniVersion: "1.1.0", "cni.dev/valid-attachments": attachments };
    const r = await cni(host, plugin, "GC", input, { bin: OUR_BIN, ...call, containerId: "" });
    if (r.code !== 0) failures.push({ plugin, result: r });
  }
  return failures;
}

/** Runs `n` async jobs at most `width` at a time, in order of index. */
export async function pool<T>(n: number, width: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(n);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < n; i = next++) out[i] = await job(i);
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
  return out;
}
