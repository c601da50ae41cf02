/**
 * Property, on the kernel: each plugin executable, run as a runtime runs it inside a throwaway
 * host, given a valid config with random fields replaced, removed or wrapped (fast-check), either
 * succeeds (then DEL) or fails with a CNI error (a spec code, a message, no stack trace, no JS
 * runtime error) and the host, the container and the stores exactly as before. The plugins run
 * in a working directory of their own (a runtime's), which must stay empty: a random path that
 * is not absolute must be refused, not created there. More runs: CNI_NFT_PROPERTY_RUNS=200.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { cni, tempDir } from "../helpers/cni.js";
import { DEFAULT_DATA_DIR } from "../../plugins/ipam/host-local/config.js";
import { hostAndContainer, hostState, stateDiff } from "../helpers/state.js";
import { CRASH, SPEC_CODES, applyEdits, edits } from "../helpers/mutate.js";

const RUNS = Number(process.env["CNI_NFT_PROPERTY_RUNS"] ?? 8);
/** Unique per run: a config whose dataDir a mutation removed uses host-local's default store. */
const NETWORK = `prop${process.pid}`;
type Conf = Record<string, unknown>;

const prevResult = {
  cniVersion: "1.0.0",
  interfaces: [{ name: "eth0", sandbox: "/x" }],
  ips: [{ address: "10.240.0.5/24", gateway: "10.240.0.1", interface: 0 }],
};

function bases(dir: string): Array<{ plugin: string; ifname: string; conf: Conf }> {
  const ipam = {
    type: "host-local",
    dataDir: join(dir, "ipam"),
    ranges: [[{ subnet: "10.240.0.0/24", rangeStart: "10.240.0.10", rangeEnd: "10.240.0.50" }]],
    routes: [{ dst: "0.0.0.0/0" }],
  };
  const common = { cniVersion: "1.0.0", name: NETWORK };
  const main = { ifname: "eth1" };
  const meta = { ifname: "eth0" };
  return [
    {
      plugin: "bridge",
      ...main,
      conf: {
        ...common,
        type: "bridge",
        bridge: "propbr0",
        isGateway: true,
        ipMasq: true,
        ipMasqBackend: "nftables",
        macspoofchk: true,
        ipam,
      },
    },
    { plugin: "ptp", ...main, conf: { ...common, type: "ptp", ipMasq: true, mtu: 1400, ipam } },
    { plugin: "host-local", ...main, conf: { ...common, type: "bridge", ipam } },
    {
      plugin: "static",
      ...main,
      conf: {
        ...common,
        type: "bridge",
        ipam: {
          type: "static",
          addresses: [{ address: "10.240.0.9/24", gateway: "10.240.0.1" }],
          dns: { nameservers: ["10.240.0.1"] },
        },
      },
    },
    ...["nftables", "iptables"].map((backend) => ({
      plugin: "portmap",
      ...meta,
      conf: {
        ...common,
        type: "portmap",
        backend,
        snat: true,
        runtimeConfig: { portMappings: [{ hostPort: 18080, containerPort: 80, protocol: "tcp" }] },
        prevResult,
      },
    })),
    ...["nftables", "iptables"].map((backend) => ({
      plugin: "firewall",
      ...meta,
      conf: { ...common, type: "firewall", backend, ingressPolicy: "same-bridge", prevResult },
    })),
    {
      plugin: "tuning",
      ...meta,
      conf: {
        ...common,
        type: "tuning",
        dataDir: join(dir, "tuning"),
        mtu: 1400,
        promisc: true,
        sysctl: { "net.ipv4.conf.eth0.rp_filter": "1" },
        prevResult,
      },
    },
    { plugin: "loopback", ...meta, conf: { ...common, type: "loopback" } },
  ];
}

before(sweepStaleNamespaces);

describe("random configs never crash a plugin and a refusal changes nothing", () => {
  const nets = new NetnsPool();
  const dir = tempDir("property");
  const cwd = tempDir("property-cwd");
  let host: Netns, container: Netns;
  before(async () => {
    [host, container] = await hostAndContainer(nets, "prop", "proppeer");
  });
  after(async () => {
    await nets.destroyAll();
    dir.remove();
    cwd.remove();
    rmSync(join(DEFAULT_DATA_DIR, NETWORK), { recursive: true, force: true });
  });

  for (const base of bases(dir.path)) {
    const backend = base.conf["backend"];
    const label = typeof backend === "string" ? `${base.plugin} (${backend})` : base.plugin;
    test(label, async () => {
      let baseline = await hostState([host, container], [dir.path, cwd.path]);
      let n = 0;
      await fc.assert(
        fc.asyncProperty(edits, async (list) => {
          const conf = applyEdits(base.conf, list);
          const call = {
            containerId: `prop${n++}`,
            netns: container.path,
            ifname: base.ifname,
            cwd: cwd.path,
          };
          const r = await cni(host, base.plugin, "ADD", conf as object, call);
          if (r.code === 0) {
            // A valid config after all: undo it and take the new baseline (a bridge stays).
            const prev = r.json;
            await cni(
              host,
              base.plugin,
              "DEL",
              { ...(conf as object), ...(prev ? { prevResult: prev } : {}) },
              call,
            );
            baseline = await hostState([host, container], [dir.path, cwd.path]);
            return;
          }
          const out = `${JSON.stringify(conf)}\n${r.stdout}${r.stderr}`;
          assert.ok(
            r.json && SPEC_CODES.has(r.json["code"] as number),
            `a CNI error with a spec code: ${out}`,
          );
          assert.equal(typeof r.json["msg"], "string", out);
          assert.doesNotMatch(r.stdout + r.stderr, CRASH, out);
          assert.doesNotMatch(r.stderr, /\n\s+at /, `no stack trace: ${out}`);
          const now = await hostState([host, container], [dir.path, cwd.path]);
          assert.ok(now === baseline, `nothing changed: ${out}\n${stateDiff(baseline, now)}`);
        }),
        // No shrinking: a failed run may leave state behind, so the first failure is the one to read.
        { numRuns: RUNS, includeErrorInReport: true, endOnFailure: true },
      );
    });
  }

  test("nothing was created in the plugins' working directory", () => {
    assert.deepEqual(readdirSync(cwd.path), []);
  });
});
