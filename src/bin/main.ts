/**
 * The multi-call entry: the compiled binary `cni-nft-plugins` (scripts/build-compiled.mjs) and,
 * under Node, every shim in dist/bin. The plugin is named by the name it was started as or by
 * CNI_NFT_PLUGIN (src/bin/invocation.ts). The compiled binary tries the resident daemon first
 * when it is started directly (links, or a caller that skips the sh front); the sh fronts exec
 * `cni-nft-client` instead when a daemon's socket exists (docs/resident.md). Node never tries it.
 */
import { failed, invocation } from "./invocation.js";
import { multiCall } from "./multicall.js";
import type { Handed } from "../resident/call.js";

async function main(): Promise<void> {
  const called = invocation();
  // Loaded only when needed: VERSION and the CLI never initialise the client's modules.
  const handed: Handed =
    called.cli || process.env["CNI_COMMAND"] === "VERSION"
      ? { served: false }
      : await (await import("./resident-first.js")).residentFirst(called);
  if (handed.served) return;
  await multiCall(called, handed.stdin);
}

// No top-level await: the compiled binary is CommonJS bytecode.
main().catch(failed);
