/**
 * Running nft. Text goes in on stdin (`nft -f -`); nft's JSON input cannot be read from a pipe
 * opened by Node. A network namespace given as a path is entered with nsenter, because Node has
 * no setns.
 */
import { spawn } from "node:child_process";
import { NftError } from "./errors.js";

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ExecOptions {
  /** Path of the nft binary; default `nft` from PATH. */
  nftPath?: string;
  /** Network namespace path (`/var/run/netns/x`, `/proc/PID/ns/net`); default: the caller's. */
  netns?: string;
}

/** Runs a command and collects its output; never rejects for a non-zero exit. */
export function execCommand(argv: readonly string[], stdin?: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd!, args, { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (code, signal) =>
      resolve({
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        code: code ?? (signal ? 128 : 1),
      }),
    );
    child.stdin.on("error", () => undefined); // nft may exit before reading all input
    child.stdin.end(stdin ?? "");
  });
}

export function nftArgv(args: readonly string[], opts: ExecOptions): string[] {
  const nft = opts.nftPath ?? "nft";
  return opts.netns !== undefined ? ["nsenter", `--net=${opts.netns}`, "--", nft, ...args] : [nft, ...args];
}

export async function execNft(
  args: readonly string[],
  opts: ExecOptions,
  stdin?: string,
): Promise<ExecResult> {
  try {
    return await execCommand(nftArgv(args, opts), stdin);
  } catch (e) {
    throw new NftError(
      "ENOEXEC",
      `could not run nft: ${(e as Error).message}; is the nftables package installed?`,
    );
  }
}
