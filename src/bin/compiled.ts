/**
 * The entry of `cni-nft-client` (scripts/build-compiled.mjs), the resident daemon's client: the
 * sh fronts exec it instead of the multi-call binary when the daemon's socket exists
 * (docs/resident.md). A call the daemon serves costs Bun's start and this small module; a call it
 * does not serve (a refusal, a stale socket, a socket that fails the checks) goes on in this same
 * process to the full dispatch, src/bin/multicall.ts, with the stdin this module read.
 *
 * multicall.ts is a second entry point of the same executable, loaded only then: imported
 * statically (or with a literal specifier) the bundler would put it, with every plugin, into this
 * entry, whose bytecode Bun loads whole at every start.
 */
import { failed, invocation } from "./invocation.js";
import { residentFirst } from "./resident-first.js";

/** The full dispatch's file beside this entry in the executable; not a literal, on purpose. */
const MULTICALL = ["./multicall", "js"].join(".");

async function main(): Promise<void> {
  const called = invocation();
  const handed = await residentFirst(called);
  if (handed.served) return;
  const { multiCall } = (await import(MULTICALL)) as typeof import("./multicall.js");
  await multiCall(called, handed.stdin);
}

// No top-level await: the compiled binary is CommonJS bytecode.
main().catch(failed);
