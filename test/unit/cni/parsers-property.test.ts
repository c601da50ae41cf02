/**
 * Property: every config and result parser, given random JSON of the right and the wrong shape
 * (a valid config with fields replaced, removed or wrapped), either accepts it or throws a
 * CniError with a spec code and a message; never a JS runtime error. Pure functions: no root,
 * nothing on the host; they run in a temporary working directory that must stay empty (a parser
 * that created a random relative `dataDir` would leave it there). The plugins' executables get the
 * same inputs on the kernel in test/integration/property.test.ts.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { CniError, baseNetConf, parseCniArgs, parseResult, validateConfig } from "../../../src/cni/index.js";
import { hostLocalSchema, loadIpamConfig } from "../../../plugins/ipam/host-local/config.js";
import { staticSchema } from "../../../plugins/ipam/static/static.js";
import { schema as portmapSchema } from "../../../plugins/meta/portmap/config.js";
import { schema as firewallSchema } from "../../../plugins/meta/firewall/firewall_backend.js";
import { CRASH, SPEC_CODES, applyEdits, edits } from "../../helpers/mutate.js";

const RUNS = Number(process.env["CNI_NFT_PROPERTY_RUNS"] ?? 300);

const home = process.cwd();
const cwd = mkdtempSync(join(tmpdir(), "cni-nft-parsers-property-"));
before(() => process.chdir(cwd));
after(() => {
  process.chdir(home);
  rmSync(cwd, { recursive: true, force: true });
});

function refusedProperly(e: unknown): void {
  assert.ok(e instanceof CniError, `threw ${String(e)} (${(e as Error)?.stack ?? ""}), not a CniError`);
  assert.ok(SPEC_CODES.has(e.code), `code ${e.code}`);
  assert.ok(e.message.length > 0);
  assert.doesNotMatch(e.message, CRASH);
}

function property(name: string, base: unknown, parse: (x: unknown) => unknown): void {
  test(name, () => {
    fc.assert(
      fc.property(edits, (list) => {
        try {
          parse(applyEdits(base, list));
        } catch (e) {
          refusedProperly(e);
        }
      }),
      { numRuns: RUNS, includeErrorInReport: true },
    );
  });
}

const hostLocal = {
  cniVersion: "1.0.0",
  name: "n",
  type: "bridge",
  ipam: {
    type: "host-local",
    ranges: [
      [{ subnet: "10.1.0.0/24", rangeStart: "10.1.0.10", rangeEnd: "10.1.0.20", gateway: "10.1.0.1" }],
    ],
    routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
    dataDir: "/tmp/x",
  },
  runtimeConfig: { ips: ["10.1.0.11/24"], ipRanges: [[{ subnet: "10.2.0.0/24" }]] },
  args: { cni: { ips: ["10.1.0.12"] } },
};
const result = {
  cniVersion: "1.0.0",
  interfaces: [{ name: "eth0", mac: "0a:58:0a:01:00:02", sandbox: "/run/netns/x" }],
  ips: [{ address: "10.1.0.2/24", gateway: "10.1.0.1", interface: 0 }],
  routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
  dns: { nameservers: ["10.1.0.1"], search: ["x"] },
};

property("host-local config", hostLocal, (x) =>
  loadIpamConfig(validateConfig(hostLocalSchema, x), { IP: "10.1.0.13" }),
);
property(
  "static config",
  {
    cniVersion: "1.0.0",
    name: "n",
    ipam: {
      type: "static",
      addresses: [{ address: "10.1.0.2/24", gateway: "10.1.0.1" }],
      routes: [{ dst: "0.0.0.0/0" }],
      dns: { nameservers: ["10.1.0.1"] },
    },
  },
  (x) => validateConfig(staticSchema, x),
);
property(
  "portmap config",
  {
    cniVersion: "1.0.0",
    name: "n",
    type: "portmap",
    backend: "nftables",
    snat: true,
    conditionsV4: ["-s", "10.0.0.0/8"],
    runtimeConfig: {
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp", hostIP: "1.2.3.4" }],
    },
    prevResult: result,
  },
  (x) => validateConfig(portmapSchema, x),
);
property(
  "firewall config",
  {
    cniVersion: "1.0.0",
    name: "n",
    type: "firewall",
    backend: "iptables",
    iptablesAdminChainName: "ADM",
    ingressPolicy: "same-bridge",
    nftablesMark: 4096,
    prevResult: result,
  },
  (x) => validateConfig(firewallSchema, x),
);
property(
  "common config keys",
  { ...hostLocal, dns: { nameservers: ["1.1.1.1"] }, capabilities: { portMappings: true } },
  (x) => validateConfig(baseNetConf, x),
);
for (const version of ["0.2.0", "0.4.0", "1.0.0"])
  property(
    `result ${version}`,
    version === "0.2.0"
      ? {
          cniVersion: "0.2.0",
          ip4: { ip: "10.1.0.2/24", gateway: "10.1.0.1", routes: [{ dst: "0.0.0.0/0" }] },
        }
      : { ...result, cniVersion: version },
    (x) => parseResult(x, version),
  );

test("CNI_ARGS", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary-ascii" }), (s) => {
      try {
        parseCniArgs(s);
      } catch (e) {
        refusedProperly(e);
      }
    }),
    { numRuns: RUNS },
  );
});

test("nothing was created in the working directory", () => {
  assert.deepEqual(readdirSync(cwd), []);
});
