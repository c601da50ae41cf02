/** Running a script under Bun (the runtime of the compiled plugins), for code only Bun can run. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./cni.js";
import { run, type Netns, type RunResult } from "./netns.js";

export const BUN = join(ROOT, "node_modules", "bun", "bin", "bun.exe");

export const haveBun = existsSync(BUN);

/** Runs `bun <script> ...args` (a path under test/helpers), inside `ns` when given. */
export function runBun(
  script: string,
  args: string[],
  opts: { ns?: Netns; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<RunResult> {
  const argv = [BUN, join(ROOT, "test", "helpers", script), ...args];
  return run(opts.ns ? opts.ns.argv(argv) : argv, {
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.input !== undefined ? { input: opts.input } : {}),
  });
}
