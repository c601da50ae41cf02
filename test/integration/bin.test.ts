// rootless: needs no network namespace and no root (scripts/test.sh runs it for every user)
/** The multi-call executables in dist/bin: dispatch by name, stubs for plugins not written yet. */
import { test, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ensureBuilt, execPlugin, OUR_BIN } from "../helpers/cni.js";

before(ensureBuilt);

const NAMES = ["bridge", "ptp", "portmap", "firewall", "tuning", "host-local", "static", "loopback"];

test("every plugin executable exists and answers VERSION", async () => {
  for (const name of NAMES) {
    const file = join(OUR_BIN, name);
    assert.ok(existsSync(file), file);
    const r = await execPlugin(file, { CNI_COMMAND: "VERSION" }, "");
    assert.equal(r.code, 0, `${name}: ${r.stdout}${r.stderr}`);
    assert.ok((r.json?.supportedVersions as string[]).includes("1.0.0"), name);
  }
});

test("every plugin is implemented: none answers ADD with the not-yet stub", async () => {
  for (const name of NAMES) {
    const r = await execPlugin(
      join(OUR_BIN, name),
      { CNI_COMMAND: "ADD", CNI_CONTAINERID: "c", CNI_NETNS: "/x", CNI_IFNAME: "eth0", CNI_PATH: OUR_BIN },
      { cniVersion: "1.0.0", name: "n", type: name },
    );
    assert.doesNotMatch(String(r.json?.msg), /not implemented yet/, name);
  }
});

test("the plugin is chosen by the shim, whatever CNI_NFT_PLUGIN the caller had", async () => {
  const r = await execPlugin(
    join(OUR_BIN, "static"),
    {
      CNI_NFT_PLUGIN: "bridge",
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "c",
      CNI_NETNS: "/x",
      CNI_IFNAME: "eth0",
      CNI_PATH: OUR_BIN,
    },
    {
      cniVersion: "1.0.0",
      name: "n",
      type: "x",
      ipam: { type: "static", addresses: [{ address: "10.0.0.2/24" }] },
    },
  );
  assert.equal(r.code, 0, r.stdout);
  assert.deepEqual(r.json, { cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/24" }], dns: {} });
});

test("execIpam: in-process for our host-local, exec otherwise, same results and errors", async () => {
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  await import("../../src/bin/plugins.js"); // registers in-process IPAM
  const { execIpam, CniError } = await import("../../src/cni/index.js");
  const dir = mkdtempSync(join(tmpdir(), "cni-nft-ipam-"));
  try {
    const conf = (d: string) =>
      JSON.stringify({
        cniVersion: "0.4.0",
        name: "n",
        type: "bridge",
        ipam: { type: "host-local", subnet: "10.66.0.0/24", dataDir: d },
      });
    const env = (path: string, extra: Record<string, string> = {}) => ({
      CNI_CONTAINERID: "c1",
      CNI_NETNS: "/x",
      CNI_IFNAME: "eth0",
      CNI_PATH: path,
      PATH: process.env.PATH,
      ...extra,
    });
    const inproc = await execIpam("host-local", "ADD", conf(join(dir, "a")), env(OUR_BIN));
    const execd = await execIpam(
      "host-local",
      "ADD",
      conf(join(dir, "b")),
      env(OUR_BIN, { CNI_NFT_IPAM_INPROCESS: "0" }),
    );
    const upstream = await execIpam("host-local", "ADD", conf(join(dir, "c")), env("/usr/lib/cni"));
    assert.deepEqual(inproc, execd);
    assert.deepEqual(inproc, upstream);
    assert.deepEqual(inproc, {
      cniVersion: "0.4.0",
      ips: [{ address: "10.66.0.2/24", gateway: "10.66.0.1" }],
      dns: {},
    });
    for (const path of [OUR_BIN, "/usr/lib/cni"]) {
      await assert.rejects(
        execIpam("host-local", "ADD", conf(join(dir, path === OUR_BIN ? "a" : "c")), env(path)),
        (e) => e instanceof CniError && /duplicate allocation/.test(e.message),
      );
      assert.equal(
        await execIpam("host-local", "DEL", conf(join(dir, path === OUR_BIN ? "a" : "c")), env(path)),
        undefined,
      );
    }
    await assert.rejects(execIpam("nope", "ADD", conf(dir), env(OUR_BIN)), /failed to find plugin "nope"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
