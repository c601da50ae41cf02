/**
 * Running nft. Two execs answer the same argv with the same stdout, stderr and exit status: the
 * `nft` command on the project's process runner (injectable: a test passes a fake runner), and,
 * in the compiled (Bun) plugins, libnftables in-process (libnftables.ts), chosen when nothing
 * was injected and the library loads. Text goes in on stdin (`nft -f -`); nft's JSON input
 * cannot be read from a pipe opened by Node.
 */
import { systemRunner, type Completed, type Runner } from "../process/runner.js";
import { NftError } from "./errors.js";
import { loadLibNftables } from "./libnftables.js";
import { retryInterrupted } from "./retry.js";

export type ExecResult = Completed;

/** Runs one nft invocation: `args` are the words after `nft`, `stdin` the text for `-f -`. */
export interface NftExec {
  run(args: readonly string[], stdin: string | undefined, netns: string | undefined): Promise<ExecResult>;
}

export interface ExecOptions {
  /** Path of the nft binary; default `nft` from PATH. */
  nftPath?: string;
  /**
   * Network namespace: a path (`/var/run/netns/x`, `/proc/PID/ns/net`) or a name under
   * /run/netns; default: the caller's.
   */
  netns?: string;
  /** Starts nft; default: the system's runner. */
  runner?: Runner;
  /**
   * What runs nft; default: libnftables in-process under Bun when it loads and neither `runner`
   * nor `nftPath` is given, else the `nft` command on `runner`.
   */
  exec?: NftExec;
}

/** The `nft` command on a process runner (namespaces through nsenter). */
export function commandExec(runner: Runner = systemRunner, nftPath = "nft"): NftExec {
  return {
    run: (args, stdin, netns) =>
      runner.run({
        argv: [nftPath, ...args],
        ...(stdin !== undefined ? { stdin } : {}),
        ...(netns !== undefined ? { netns } : {}),
      }),
  };
}

/** libnftables in this process, falling back to the command for what it does not handle. */
export async function libraryExec(): Promise<NftExec | undefined> {
  const lib = await loadLibNftables();
  if (!lib) return undefined;
  const command = commandExec();
  return {
    run: (args, stdin, netns) => {
      const res = lib.run(args, stdin, netns);
      return res ? Promise.resolve(res) : command.run(args, stdin, netns);
    },
  };
}

let defaultExec: Promise<NftExec | undefined> | undefined;

/** The exec for these options (the library is probed once per process). */
export async function chooseExec(opts: ExecOptions): Promise<NftExec> {
  if (opts.exec) return opts.exec;
  const injected = (opts.runner !== undefined && opts.runner !== systemRunner) || opts.nftPath !== undefined;
  if (!injected) {
    defaultExec ??= libraryExec();
    const lib = await defaultExec;
    if (lib) return lib;
  }
  return commandExec(opts.runner, opts.nftPath);
}

export async function execNft(
  args: readonly string[],
  opts: ExecOptions,
  stdin?: string,
): Promise<ExecResult> {
  try {
    const exec = await chooseExec(opts);
    // Every nft run, whoever asks for it: an interrupted dump is retried (see retry.ts).
    return await retryInterrupted(() => exec.run(args, stdin, opts.netns));
  } catch (e) {
    throw new NftError(
      "ENOEXEC",
      `could not run nft: ${(e as Error).message}; is the nftables package installed?`,
      undefined,
      undefined,
      undefined,
      { cause: e },
    );
  }
}
