/**
 * The multi-call entry under Node: every plugin executable in dist/bin is a small shim that lands
 * here, the plugin named by CNI_NFT_PLUGIN (src/bin/invocation.ts). The compiled binary's entry is
 * src/bin/compiled.ts. Node never tries the resident daemon (docs/resident.md).
 */
import { failed, invocation } from "./invocation.js";
import { multiCall } from "./multicall.js";

multiCall(invocation()).catch(failed);
