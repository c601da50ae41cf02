/**
 * Dropping the UDP conntrack entries of host ports, so the next packets see a new mapping instead
 * of following an old entry (upstream's portmap does it too). The compiled plugins ask the
 * kernel through ctnetlink (no process); Node, an injected runner, or a kernel that refuses the
 * request run the `conntrack` command, one per port and family. Best effort: a failure is not
 * the caller's.
 */
import { loadLibc } from "../ffi/libc.js";
import { systemRunner, type Runner } from "../process/index.js";
import { deleteUdpEntries } from "./ctnetlink.js";

export interface FlushOptions {
  /** The `conntrack` command is on this host (the fallback needs it). */
  commandPresent: boolean;
  /** Starts the command; an injected one (a fake) means the command path. */
  runner?: Runner;
}

export async function flushUdpConntrack(
  ports: readonly number[],
  families: ReadonlyArray<4 | 6>,
  opts: FlushOptions,
): Promise<void> {
  if (ports.length === 0 || families.length === 0) return;
  const runner = opts.runner ?? systemRunner;
  const libc = runner === systemRunner ? await loadLibc() : undefined;
  if (libc) {
    try {
      deleteUdpEntries(libc, ports, families);
      return;
    } catch {
      // The kernel refused (no ctnetlink, an older filter): the command may still do it.
    }
  }
  if (!opts.commandPresent) return;
  await Promise.all(
    ports.flatMap((p) =>
      families.map((f) =>
        runner
          .run({
            argv: [
              "conntrack",
              "-D",
              "-f",
              f === 4 ? "ipv4" : "ipv6",
              "-p",
              "udp",
              "--orig-port-dst",
              String(p),
            ],
          })
          .catch(() => undefined),
      ),
    ),
  );
}
