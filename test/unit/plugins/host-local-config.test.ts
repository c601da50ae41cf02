/**
 * host-local's dataDir: absolute, or empty/absent for the default; a relative one is refused
 * (code 7) because it would resolve against the runtime's working directory (docs/reliability.md).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { CniError, validateConfig } from "../../../src/cni/index.js";
import {
  DEFAULT_DATA_DIR,
  hostLocalSchema,
  loadIpamConfig,
} from "../../../plugins/ipam/host-local/config.js";

const conf = (dataDir?: string): unknown => ({
  cniVersion: "1.0.0",
  name: "n",
  type: "bridge",
  ipam: { type: "host-local", subnet: "10.1.0.0/24", ...(dataDir === undefined ? {} : { dataDir }) },
});
const load = (dataDir?: string): string =>
  loadIpamConfig(validateConfig(hostLocalSchema, conf(dataDir)), {}).dataDir;

test("dataDir: absolute kept, empty or absent is the default", () => {
  assert.equal(load("/srv/ipam"), "/srv/ipam");
  assert.equal(load(""), DEFAULT_DATA_DIR);
  assert.equal(load(), DEFAULT_DATA_DIR);
});

test("dataDir relative: refused with code 7 naming the field", () => {
  for (const dir of ["::", "ipam", "./ipam", "../../etc"])
    assert.throws(
      () => load(dir),
      (e: unknown) =>
        e instanceof CniError &&
        e.code === 7 &&
        /^invalid network config: ipam\.dataDir: must be an absolute path/.test(e.message),
      dir,
    );
});
