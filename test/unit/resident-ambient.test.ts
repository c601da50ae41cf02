/**
 * The daemon runs calls at once, each with its caller's environment (src/cni/ambient.ts): code
 * that reads the environment outside its CmdArgs, and the programs it starts, see the call's own
 * environment, never another call's, and process.env outside any call.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import { ambientEnv, callEnv, setEnvScope } from "../../src/cni/ambient.js";
import { systemRunner } from "../../src/process/runner.js";
import type { Env } from "../../src/cni/skel.js";

test("concurrent calls each see their own environment, in their code and in the programs they start", async () => {
  assert.equal(ambientEnv(), process.env, "a plugin process: process.env");
  assert.equal(callEnv(), undefined);
  const scope = new AsyncLocalStorage<Env>();
  setEnvScope(scope);
  const call = (name: string, delayMs: number): Promise<string[]> =>
    scope.run({ PATH: process.env["PATH"], CALL: name }, async () => {
      const seen = [String(ambientEnv()["CALL"])];
      await new Promise((r) => setTimeout(r, delayMs)); // the other call runs meanwhile
      seen.push(String(ambientEnv()["CALL"]));
      const child = await systemRunner.run({ argv: ["sh", "-c", 'printf %s "$CALL"'] });
      seen.push(child.stdout);
      const explicit = await systemRunner.run({
        argv: ["sh", "-c", 'printf %s "$CALL"'],
        env: { CALL: "given" },
      });
      seen.push(explicit.stdout);
      return seen;
    });
  const [a, b] = await Promise.all([call("a", 30), call("b", 1)]);
  assert.deepEqual(a, ["a", "a", "a", "given"]);
  assert.deepEqual(b, ["b", "b", "b", "given"]);
  assert.equal(ambientEnv(), process.env, "outside any call: process.env");
  assert.equal(callEnv(), undefined);
});
