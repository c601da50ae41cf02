/**
 * The two orders the daemon keeps between calls (docs/resident.md). Calls of one attachment
 * (container ID + interface) run one after the other, in arrival order, as a runtime that waits
 * for each call would run them; others run at once. And every call runs with its caller's working
 * directory and umask, which are the process's: calls with another one wait until the running
 * calls are done, then the process switches.
 */

/** Serialises the calls of each key; calls of different keys do not wait for each other. */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `fn` after every earlier call of `key` settled; no key: at once. */
  run<T>(key: string | undefined, fn: () => Promise<T>): Promise<T> {
    if (key === undefined) return fn();
    const before = this.tails.get(key) ?? Promise.resolve();
    const mine = before.then(fn);
    const tail = mine.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return mine;
  }

  /** Keys with a call queued or running (bounded by the calls in flight). */
  get size(): number {
    return this.tails.size;
  }
}

/**
 * Admits calls whose process state (working directory and umask, as one key) is the current one,
 * switching to another only when no admitted call runs. Arrival order is kept: a call that would
 * be admitted waits behind one that waits for a switch, so no state waits forever.
 */
export class StateGate {
  private current: string | undefined;
  private running = 0;
  private readonly waiting: Array<{ key: string; admit: () => void; fail: (e: unknown) => void }> = [];

  /** `apply` switches the process to a key's state; when it throws, that call fails with it. */
  constructor(private readonly apply: (key: string) => void) {}

  async enter(key: string): Promise<void> {
    if (this.waiting.length === 0 && (this.running === 0 || key === this.current)) {
      this.admit(key);
      return;
    }
    await new Promise<void>((admit, fail) => this.waiting.push({ key, admit, fail }));
  }

  leave(): void {
    this.running--;
    while (this.running === 0 && this.waiting.length > 0) {
      const key = this.waiting[0]!.key;
      while (this.waiting[0]?.key === key) {
        const w = this.waiting.shift()!;
        try {
          this.admit(key);
          w.admit();
        } catch (e) {
          w.fail(e);
        }
      }
    }
  }

  /** Calls admitted and not yet left. */
  get active(): number {
    return this.running;
  }

  private admit(key: string): void {
    if (key !== this.current) {
      this.current = undefined; // unknown until apply returns
      this.apply(key);
      this.current = key;
    }
    this.running++;
  }
}
