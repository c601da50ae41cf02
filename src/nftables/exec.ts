/**
 * Running nft, on the project's process runner (injectable: a test passes a fake runner). Text
 * goes in on stdin (`nft -f -`); nft's JSON input cannot be read from a pipe opened by Node.
 */
import { systemRunner, type Completed, type Runner } from "../process/runner.js";
import { NftError } from "./errors.js";
import { retryInterrupted } from "./retry.js";

export type ExecResult = Completed;

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
}

export async function execNft(
  args: readonly string[],
  opts: ExecOptions,
  stdin?: string,
): Promise<ExecResult> {
  const runner = opts.runner ?? systemRunner;
  const cmd = {
    argv: [opts.nftPath ?? "nft", ...args],
    ...(stdin !== undefined ? { stdin } : {}),
    ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
  };
  try {
    // Every nft run, whoever asks for it: an interrupted dump is retried (see retry.ts).
    return await retryInterrupted(() => runner.run(cmd));
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
