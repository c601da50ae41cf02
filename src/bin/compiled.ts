/**
 * The compiled binary's entry (scripts/build-compiled.mjs): the resident daemon's client and
 * nothing else (docs/resident.md). A call the daemon serves costs Bun's start and this small module;
 * every other call (no daemon, the usual case; a refusal; VERSION; the CLI) goes on in this same
 * process to the full dispatch, src/bin/multicall.ts, with the stdin this module may have read.
 *
 * multicall.ts is a second entry point of the same executable, loaded only here and only then:
 * imported statically (or with a literal specifier) the bundler would put it, with every plugin,
 * into this entry, whose bytecode Bun loads whole at every start.
 */
import { failed, invocation } from "./invocation.js";
import { PLUGIN_NAMES } from "./names.js";
import { throughResident } from "../resident/call.js";

/** The full dispatch's file beside this entry in the executable; not a literal, on purpose. */
const MULTICALL = ["./multicall", "js"].join(".");

async function main(): Promise<void> {
  const called = invocation();
  // A warm resident daemon, when one serves this caller, runs the call; nothing of the plugins
  // is loaded here then. Otherwise stdin, if read, goes to the plugin.
  let stdin: string | undefined;
  if (
    !called.cli &&
    (PLUGIN_NAMES as readonly string[]).includes(called.plugin) &&
    process.argv.length <= 2
  ) {
    const handed = await throughResident(called.plugin);
    if (handed.served) return;
    stdin = handed.stdin;
  }
  const { multiCall } = (await import(MULTICALL)) as typeof import("./multicall.js");
  await multiCall(called, stdin);
}

// No top-level await: the compiled binary is CommonJS bytecode.
main().catch(failed);
