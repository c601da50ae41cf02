/**
 * bench/chain.ts's side of the flavours' drivers (bench/lib/chain-host.ts): one host namespace
 * and one long-lived driver inside it per flavour, asked for one measurement at a time, and the
 * rounds that give every flavour the same load: each round asks every flavour once, in an order
 * rotated by one per round. A flavour whose driver fails is left out of the rounds after it, with
 * the reason kept for the table's output (its figures so far stay).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Flavour } from "./chain-run.js";
import { ANSWER_PREFIX, type Answer, type Commands, type Op } from "./chain-host.js";

const DRIVER = fileURLToPath(new URL("./chain-host.ts", import.meta.url));

export class FlavourHost {
  /** Why the flavour left the run, when it did. */
  failed?: string;
  private readonly waiting: Array<(a: Answer) => void> = [];
  private exited?: string;

  private constructor(
    readonly flavour: Flavour,
    private readonly child: ChildProcess,
  ) {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (!line.startsWith(ANSWER_PREFIX)) return void process.stderr.write(`${line}\n`);
      this.waiting.shift()?.(JSON.parse(line.slice(ANSWER_PREFIX.length)) as Answer);
    });
    child.on("exit", (code, signal) => {
      this.exited = `its driver exited (${signal ?? code})`;
      for (const w of this.waiting.splice(0)) w({ ok: false, error: this.exited });
    });
  }

  /** Adds the host namespace `ns` and starts the flavour's driver inside it. */
  static start(flavour: Flavour, ns: string): FlavourHost {
    execFileSync("ip", ["netns", "add", ns]);
    execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, ...process.execArgv, DRIVER], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    child.stdin.on("error", () => undefined); // a driver that died: its answer says so
    return new FlavourHost(flavour, child);
  }

  get label(): string {
    return this.flavour.label;
  }

  /** One command; rejects with the driver's error (or its exit). */
  call<K extends Op>(op: K, args: Commands[K]["args"]): Promise<Commands[K]["answer"]> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    return new Promise((resolve, reject) => {
      this.waiting.push((a) =>
        a.ok ? resolve(a.value as Commands[K]["answer"]) : reject(new Error(a.error)),
      );
      this.child.stdin!.write(`${JSON.stringify({ op, ...args })}\n`);
    });
  }

  /** Records a failure and says so; the flavour takes no part in what follows. */
  fail(what: string, e: unknown): void {
    this.failed = `${what}: ${(e as Error).message}`;
    console.error(`  ${this.label}: ${this.failed}; left out from here on`);
  }

  /** Runs `fn` unless the flavour has failed; a failure leaves it out from then on. */
  async attempt(what: string, fn: (h: FlavourHost) => Promise<unknown>): Promise<void> {
    if (this.failed) return;
    try {
      await fn(this);
    } catch (e) {
      this.fail(what, e);
    }
  }

  /** Lets the population go, stops the daemon and waits for the driver to exit. */
  async stop(): Promise<Commands["stop"]["answer"]> {
    const exit = new Promise<void>((r) => (this.exited ? r() : this.child.once("exit", () => r())));
    try {
      return await this.call("stop", {});
    } finally {
      this.child.stdin!.end();
      await exit;
    }
  }
}

/**
 * `runs` rounds of `fn` over the flavours still in the run: round r starts at the r-th flavour,
 * so each is first, second, ... equally often and all of them meet the same load.
 */
export async function rounds(
  hosts: readonly FlavourHost[],
  runs: number,
  what: string,
  fn: (h: FlavourHost, round: number) => Promise<unknown>,
): Promise<void> {
  for (let r = 0; r < runs; r++) {
    const live = hosts.filter((h) => !h.failed);
    for (let i = 0; i < live.length; i++) {
      const h = live[(r + i) % live.length]!;
      await h.attempt(what, () => fn(h, r));
    }
  }
}
