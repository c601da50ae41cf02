/**
 * The multi-call entry: every plugin executable in dist/bin is a small shim (or, once compiled,
 * a link) that lands here; the plugin is chosen by CNI_NFT_PLUGIN or by the name it was started
 * as, like busybox, and only that plugin's module is loaded.
 */
import { writeSync } from "node:fs";
import { basename } from "node:path";
import { versionReply } from "../cni/version.js";
import { PLUGIN_NAMES } from "./names.js";

/** Plugins whose issue has not landed: they answer VERSION and refuse the rest clearly. */
const PLANNED: string[] = [];

async function main(): Promise<void> {
  // The operator CLI lives in the same executable: `cni-nft` is one more name for it.
  if ([basename(process.argv0), basename(process.argv[1] ?? "")].includes("cni-nft")) {
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
  // The name the binary was started as wins (busybox style; a compiled binary reached through a
  // link named after the plugin); node shims name the plugin in CNI_NFT_PLUGIN. The variable is
  // dropped so it never leaks into plugins this one executes (IPAM delegation).
  // Under Node argv[1] is the script; a compiled Bun binary sees the link it was started as in argv0.
  const known = (n: string): boolean =>
    (PLUGIN_NAMES as readonly string[]).includes(n) || PLANNED.includes(n);
  const invoked = [basename(process.argv0), basename(process.argv[1] ?? "")].find(known);
  const name = invoked ?? process.env["CNI_NFT_PLUGIN"] ?? "";
  delete process.env["CNI_NFT_PLUGIN"];
  // A warm resident daemon, when one serves this caller, runs the call; nothing of the plugins
  // is loaded here then (docs/resident.md). Otherwise stdin, already read, goes to the plugin.
  let stdin: string | undefined;
  if ((PLUGIN_NAMES as readonly string[]).includes(name) && process.argv.length <= 2) {
    const { throughResident } = await import("../resident/call.js");
    const handed = await throughResident(name);
    if (handed.served) return;
    stdin = handed.stdin;
  }
  const { PLUGINS } = await import("./plugins.js");
  const { pluginMain } = await import("../cni/skel.js");
  const load = PLUGINS[name];
  if (load) {
    const { plugin, subcommand } = await load();
    if (subcommand && (await subcommand(process.argv.slice(2)))) return;
    await pluginMain(plugin.funcs, plugin.about, stdin);
    return;
  }
  if (PLANNED.includes(name)) {
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

// No top-level await: the compiled binary is CommonJS bytecode (scripts/build-compiled.mjs).
main().catch((e: unknown) => {
  process.stderr.write(`cni-nft: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
