/**
 * Both compiled entries try the resident daemon before anything of the plugins runs
 * (docs/resident.md): a plugin call with no arguments (`dhcp daemon` has some) is handed over when
 * a daemon serves this caller; otherwise the call goes on in this process with the stdin the
 * client may have read.
 */
import { answerLost, throughResident, type Handed } from "../resident/call.js";
import type { Invocation } from "./invocation.js";
import { PLUGIN_NAMES } from "./names.js";

/** `served`: the daemon ran the call and its output is written; else the stdin already read, if any. */
export async function residentFirst(called: Invocation): Promise<Handed> {
  if (!called.cli && called.handoff === "here") return { served: false };
  if (!called.cli && called.handoff === "lost") return answerLost();
  if (called.cli || !(PLUGIN_NAMES as readonly string[]).includes(called.plugin) || process.argv.length > 2)
    return { served: false };
  return throughResident(called.plugin);
}
