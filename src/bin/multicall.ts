/**
 * The whole multi-call dispatch: the operator CLI, VERSION, and every plugin, each plugin's module
 * loaded lazily so one plugin's code is never loaded for another. Node runs it from src/bin/main.ts;
 * the compiled binary from src/bin/compiled.ts, only once it knows the call is not the resident
 * daemon's (it is a separate entry of the executable, so that a call the daemon serves never loads
 * this module nor anything it imports).
 */
import { writeSync } from "node:fs";
import { versionReply } from "../cni/version.js";
import type { Invocation } from "./invocation.js";
import { PLANNED_NAMES } from "./names.js";

/** Runs what `called` names; `stdin`, when given, is the call's stdin already read. */
export async function multiCall(called: Invocation, stdin?: string): Promise<void> {
  // The operator CLI lives in the same executable: `cni-nft` is one more name for it.
  if (called.cli) {
    const { cli } = await import("../cli/cli.js");
    process.exitCode = await cli(process.argv.slice(2), {
      env: process.env,
      out: (s) => process.stdout.write(s),
      err: (s) => process.stderr.write(s),
    });
    return;
  }
  // Runtimes call VERSION before every ADD and DEL: answer it without loading any plugin code.
  if (process.env["CNI_COMMAND"] === "VERSION") {
    writeSync(1, versionReply()); // not process.stdout: its setup costs Bun more than the answer
    return;
  }
  const name = called.plugin;
  const { PLUGINS } = await import("./plugins.js");
  const { pluginMain } = await import("../cni/skel.js");
  const load = PLUGINS[name];
  if (load) {
    const { plugin, subcommand } = await load();
    if (subcommand && (await subcommand(process.argv.slice(2)))) return;
    await pluginMain(plugin.funcs, plugin.about, stdin);
    return;
  }
  if (PLANNED_NAMES.includes(name)) {
    const { CniError, ErrorCode, definePlugin } = await import("../cni/index.js");
    const notYet = (): Promise<never> =>
      Promise.reject(
        new CniError(ErrorCode.InvalidEnvironment, `cni-nft: the ${name} plugin is not implemented yet`),
      );
    const stub = definePlugin({ add: notYet, del: notYet, check: notYet }, { name });
    await pluginMain(stub.funcs, stub.about);
    return;
  }
  process.stderr.write(`cni-nft: unknown plugin name ${JSON.stringify(name)}\n`);
  process.exit(1);
}
