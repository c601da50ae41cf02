/** Under Bun: the process runner's answers for a few programs, as JSON (test/unit/process/runner-bun.test.ts). */
import { openSync } from "node:fs";
import { SystemRunner, runChecked } from "../../src/process/runner.js";
import { ProcessError } from "../../src/process/errors.js";

const r = new SystemRunner();
const kind = async (argv: string[]): Promise<string> => {
  try {
    await runChecked(r, { argv });
    return "ok";
  } catch (e) {
    return e instanceof ProcessError ? e.kind : `other: ${String(e)}`;
  }
};
const fd = openSync("/dev/null", "r");
const out = {
  echo: await r.run({ argv: ["sh", "-c", "cat; echo err >&2; exit 3"], stdin: "in put" }),
  env: (await r.run({ argv: ["sh", "-c", 'echo "$FOO"'], env: { FOO: "bar", PATH: process.env["PATH"] } }))
    .stdout,
  fd3: (await r.run({ argv: ["sh", "-c", "readlink /proc/self/fd/3"], passFds: [fd] })).stdout.trim(),
  signal: await r.run({ argv: ["sh", "-c", "kill -TERM $$"] }),
  timeout: await r.run({ argv: ["sleep", "5"], timeoutMs: 100 }),
  notFound: await kind(["cni-nft-no-such-program"]),
  notFoundPath: await kind(["/nonexistent/prog"]),
  permission: await kind(["/etc/passwd"]),
  earlyExit: (await r.run({ argv: ["true"], stdin: "x".repeat(1 << 20) })).code,
};
process.stdout.write(JSON.stringify(out));
