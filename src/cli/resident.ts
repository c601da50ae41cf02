/**
 * `cni-nft resident`: runs the resident daemon the plugin executables hand their calls to
 * (docs/resident.md). Started by hand (tests, bench) or by systemd's cni-nft-resident.socket,
 * whose listening socket it takes over (LISTEN_FDS).
 */
import { parseArgs } from "node:util";
import type { Io } from "./cli.js";

const HELP = `Usage: cni-nft resident [--socket PATH] [--idle-exit SECONDS] [--log-calls]

Serves plugin calls from a warm process: the plugin executables (the compiled ones) hand every
ADD, DEL, CHECK, GC and STATUS to it when it serves their caller (same network and mount
namespace, root, user, capabilities and executable), and run in-process otherwise.

Options:
  --socket PATH         where to listen (default /run/cni-nft/resident/plugins.sock; its directory
                        is made 0700, the socket 0600); plugins look there unless
                        CNI_NFT_RESIDENT_SOCKET names another; CNI_NFT_RESIDENT=off turns them off
  --idle-exit SECONDS   exit after this long without a call (default 0: never; under systemd the
                        socket unit starts it again on the next call)
  --log-calls           a log line when each call starts and ends
  -h, --help            this help

Under systemd (LISTEN_FDS) it listens on the socket it is given instead.

Examples:
  cni-nft resident --idle-exit 600                     # by hand, in the runtime's namespaces
  cni-nft install --resident && systemctl enable --now cni-nft-resident.socket`;

export async function residentMain(argv: string[], io: Io): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        socket: { type: "string" },
        "idle-exit": { type: "string", default: "0" },
        "log-calls": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    io.err(`cni-nft resident: ${(e as Error).message} (try --help)\n`);
    return 2;
  }
  if (values.help) {
    io.out(HELP + "\n");
    return 0;
  }
  const idle = Number(values["idle-exit"]);
  if (!Number.isFinite(idle) || idle < 0) {
    io.err(`cni-nft resident: --idle-exit ${values["idle-exit"]}: not a number of seconds\n`);
    return 2;
  }
  const activated = io.env["LISTEN_FDS"] === "1" && io.env["LISTEN_PID"] === String(process.pid);
  const { DEFAULT_SOCKET } = await import("../resident/client.js");
  const { runDaemon } = await import("../resident/daemon.js");
  const { PLUGINS } = await import("../bin/plugins.js");
  try {
    return await runDaemon(
      {
        ...(activated ? { listenFd: 3 } : { socket: values.socket ?? DEFAULT_SOCKET }),
        idleExitMs: idle * 1000,
        logCalls: values["log-calls"] === true,
        log: (line) => io.err(`cni-nft resident: ${line}\n`),
      },
      async (name) => {
        const load = PLUGINS[name];
        return load ? { plugin: (await load()).plugin } : undefined;
      },
    );
  } catch (e) {
    io.err(`cni-nft resident: ${(e as Error).message}\n`);
    return 1;
  }
}
