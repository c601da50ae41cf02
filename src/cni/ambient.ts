/**
 * The environment the code of a plugin call runs with. A plugin process has one call, and its
 * environment is process.env; the resident daemon (src/resident/daemon.ts) serves many calls at
 * once, each with its caller's environment, so it installs a scope (an AsyncLocalStorage) and runs
 * every call inside it. Code that reads the environment outside the CmdArgs it was given (PATH for
 * a program's lookup, CNI_NFT_STATE_DIR, the environment of the programs it starts) reads it here.
 */
import type { Env } from "./skel.js";

/** What the daemon installs: the store of the call whose code is running. */
export interface EnvScope {
  getStore(): Env | undefined;
}

let scope: EnvScope | undefined;

/** Installed once by the daemon before it serves anything. */
export function setEnvScope(s: EnvScope): void {
  scope = s;
}

/** The environment of the call being served by the daemon; undefined in a plugin process. */
export function callEnv(): Env | undefined {
  return scope?.getStore();
}

/** The environment this code runs with: the call's in the daemon, process.env elsewhere. */
export function ambientEnv(): Env {
  return scope?.getStore() ?? process.env;
}
