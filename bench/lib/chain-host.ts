/**
 * The driver inside one flavour's host namespace, for the whole of a bench/chain.ts run. The
 * bench starts one per flavour (`ip netns exec HOST node --import tsx bench/lib/chain-host.ts`,
 * bench/lib/chain-hosts.ts) so that plugins are started from inside the host as a runtime starts
 * them (no `ip netns exec` per call), and then asks each in turn for one measurement at a time:
 * one JSON command per line on stdin, one JSON answer per line on stdout (prefixed, so that a
 * stray line of output is not taken for one). A resident flavour's daemon is started with the
 * driver and kept until `stop`, which lets the population go and reports what the daemon
 * counted. The driver exits after `stop`, or cleans up the same way when its stdin closes.
 */
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { describeCounts, startBenchResident } from "./resident.js";
import type { Flavour } from "./chain-run.js";
import {
  daemonRssMiB,
  fill,
  peakMemoryMiB,
  probe,
  processes,
  release,
  timeChain,
  versionMs,
  type Attached,
  type ChainTiming,
  type HostContext,
} from "./chain-measure.js";

type NoArgs = Record<never, never>;

/** What the bench asks a driver, and what each answers. */
export interface Commands {
  setup: {
    args: { flavour: Flavour; store: string; prefix: string; parallel: number };
    answer: null;
  };
  version: { args: { samples: number }; answer: number[] };
  time: { args: { length: number; id: string }; answer: ChainTiming };
  processes: { args: NoArgs; answer: { add?: number; del?: number } };
  memory: { args: NoArgs; answer: { peak?: number; daemon?: number } };
  fill: { args: { to: number }; answer: null };
  stop: { args: NoArgs; answer: { served?: number; refused?: number } };
}
export type Op = keyof Commands;
export type Command = { [K in Op]: { op: K } & Commands[K]["args"] }[Op];
export type Answer = { ok: true; value: unknown } | { ok: false; error: string };

/** Marks the driver's answers among whatever else reaches its stdout. */
export const ANSWER_PREFIX = "@chain-host ";

class HostDriver {
  private flavour?: Flavour;
  private ctx?: HostContext;
  private parallel = 1;
  private readonly attached: Attached[] = [];

  private get f(): Flavour {
    if (!this.flavour) throw new Error("no setup yet");
    return this.flavour;
  }

  private get c(): HostContext {
    if (!this.ctx) throw new Error("no setup yet");
    return this.ctx;
  }

  async run(cmd: Command): Promise<unknown> {
    switch (cmd.op) {
      case "setup":
        return this.setup(cmd);
      case "version":
        return versionMs(this.f, cmd.samples);
      case "time":
        return timeChain(this.f, cmd.length, cmd.id, this.c);
      case "processes":
        return processes(this.f, this.c);
      case "memory":
        return {
          peak: peakMemoryMiB(this.f, this.c),
          daemon: this.c.daemon ? daemonRssMiB(this.c.daemon) : undefined,
        };
      case "fill":
        await this.fill(cmd.to);
        return null;
      case "stop":
        return this.stop();
    }
  }

  private async setup(cmd: Commands["setup"]["args"]): Promise<null> {
    let f = cmd.flavour;
    this.ctx = { prefix: cmd.prefix, store: cmd.store };
    this.parallel = cmd.parallel;
    if (f.resident) {
      this.ctx.daemon = await startBenchResident(f.bin, cmd.store);
      f = { ...f, env: { ...f.env, ...this.ctx.daemon.env } };
    }
    this.flavour = f;
    try {
      probe(f, this.ctx);
    } catch (e) {
      throw new Error(`the chain does not work (${(e as Error).message.split("\n")[0]?.slice(0, 160)})`);
    }
    return null;
  }

  /** Fills the population to `to`, saying how far it got every tenth of a long fill (2,000 takes long). */
  private async fill(to: number): Promise<void> {
    const from = this.attached.length;
    const step = Math.ceil((to - from) / 10);
    const t0 = Date.now();
    const progress = (done: number): void => {
      if (to - from >= 500 && (done - from) % step === 0 && done < to)
        console.error(
          `  ${this.f.label}: ${done} of ${to} attached (${((Date.now() - t0) / 1000).toFixed(0)} s)`,
        );
    };
    await fill(this.f, to, this.parallel, this.attached, this.c, progress);
  }

  /** Lets the population go and stops the daemon; both run, the first failure is thrown. */
  async stop(): Promise<{ served?: number; refused?: number }> {
    let failure: Error | undefined;
    try {
      release(this.attached);
    } catch (e) {
      failure = e as Error;
    }
    const daemon = this.ctx?.daemon;
    if (this.ctx) delete this.ctx.daemon;
    const counts = await daemon?.stop();
    // A refused call ran in-process: the flavour's figures would not be the daemon's.
    if (counts) console.error(`  ${this.flavour?.label}: ${describeCounts(counts)}`);
    if (failure) throw failure;
    return counts ? { served: counts.served, refused: counts.refused } : {};
  }
}

async function serve(): Promise<void> {
  const driver = new HostDriver();
  const answer = (a: Answer): Promise<void> =>
    new Promise((resolve) => process.stdout.write(`${ANSWER_PREFIX}${JSON.stringify(a)}\n`, () => resolve()));
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line) as Command;
    try {
      await answer({ ok: true, value: await driver.run(cmd) });
    } catch (e) {
      await answer({ ok: false, error: (e as Error).message });
    }
    if (cmd.op === "stop") return;
  }
  // The bench went away without a stop: leave nothing behind all the same.
  await driver.stop().catch(() => undefined);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await serve();
  process.exit(0);
}
