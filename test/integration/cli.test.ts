/**
 * The cni-nft CLI end to end through dist/bin/cni-nft: a conflist of host-local plus a recording
 * plugin (a trivial chain), in a real network namespace; result cache, prevResult, CHECK, GC,
 * STATUS, DEL order, errors and --help.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBuilt, OUR_BIN, storeFiles, tempDir } from "../helpers/cni.js";
import { NetnsPool, run, type Netns } from "../helpers/netns.js";

const CLI = join(OUR_BIN, "cni-nft");
const nets = new NetnsPool();
const tmp = tempDir("cli");
let ns: Netns;
const dirs = {
  conf: join(tmp.path, "net.d"),
  cache: join(tmp.path, "cache"),
  data: join(tmp.path, "data"),
  plugins: join(tmp.path, "bin"),
  log: join(tmp.path, "recorder.log"),
};

const RECORDER = `#!/usr/bin/env node
// Records each call and passes prevResult through (a trivial chained plugin).
const fs = require("fs");
const stdin = fs.readFileSync(0, "utf8");
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith("CNI_")));
fs.appendFileSync(${JSON.stringify(dirs.log)}, JSON.stringify({ env, conf: JSON.parse(stdin), raw: stdin }) + "\\n");
if (env.CNI_COMMAND === "VERSION") process.stdout.write('{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}');
if (env.CNI_COMMAND === "ADD") process.stdout.write(JSON.stringify(JSON.parse(stdin).prevResult));
`;

function conflist(name: string, cniVersion: string, subnet: string) {
  return {
    cniVersion,
    name,
    plugins: [
      { type: "host-local", ipam: { type: "host-local", ranges: [[{ subnet }]], dataDir: dirs.data } },
      { type: "recorder", capabilities: { portMappings: true, bandwidth: false } },
    ],
  };
}

before(async () => {
  await ensureBuilt();
  for (const d of [dirs.conf, dirs.plugins]) mkdirSync(d, { recursive: true });
  writeFileSync(join(dirs.plugins, "recorder"), RECORDER);
  chmodSync(join(dirs.plugins, "recorder"), 0o755);
  writeFileSync(
    join(dirs.conf, "10-clinet.conflist"),
    JSON.stringify(conflist("clinet", "1.1.0", "10.55.0.0/24")),
  );
  writeFileSync(
    join(dirs.conf, "20-old.conflist"),
    JSON.stringify(conflist("oldnet", "0.4.0", "10.56.0.0/24")),
  );
  writeFileSync(
    join(dirs.conf, "30-single.conf"),
    JSON.stringify({
      cniVersion: "0.3.1",
      name: "single",
      type: "host-local",
      ipam: { type: "host-local", subnet: "10.57.0.0/24", dataDir: dirs.data },
    }),
  );
  writeFileSync(join(dirs.conf, "00-broken.conflist"), "{ not json");
  ns = await nets.create("cli");
});
after(async () => {
  await nets.destroyAll();
  tmp.remove();
});

function cli(args: string[], env: Record<string, string> = {}) {
  return run([CLI, ...args], {
    env: {
      PATH: process.env.PATH,
      NETCONFPATH: dirs.conf,
      CNI_PATH: `${dirs.plugins}:${OUR_BIN}`,
      CNI_CACHE_DIR: dirs.cache,
      ...env,
    },
  });
}

function calls(): { env: Record<string, string>; conf: Record<string, unknown>; raw: string }[] {
  if (!existsSync(dirs.log)) return [];
  return readFileSync(dirs.log, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { env: Record<string, string>; conf: Record<string, unknown>; raw: string });
}

function reservations(network: string): Record<string, string> {
  const files = storeFiles(join(dirs.data, network));
  return Object.fromEntries(Object.entries(files).filter(([f]) => /^\d+\.\d+\.\d+\.\d+$/.test(f)));
}

test("add: chain runs in order with prevResult and capability args; result printed and cached", async () => {
  const r = await cli(["add", "clinet", ns.name, "--json"], {
    CAP_ARGS: JSON.stringify({
      portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
      bandwidth: { ingressRate: 1 },
    }),
    CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=web",
    CNI_CONTAINERID: "ctr1",
  });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const result = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.deepEqual(result, {
    cniVersion: "1.1.0",
    ips: [{ address: "10.55.0.2/24", gateway: "10.55.0.1" }],
    dns: {},
  });
  const [call] = calls();
  assert.equal(call!.env.CNI_COMMAND, "ADD");
  assert.equal(call!.env.CNI_NETNS, ns.path.replace("/var/run/", "/run/"));
  assert.equal(call!.env.CNI_IFNAME, "eth0");
  assert.equal(call!.env.CNI_CONTAINERID, "ctr1");
  assert.equal(call!.env.CNI_ARGS, "IgnoreUnknown=1;K8S_POD_NAME=web");
  assert.deepEqual(call!.conf.runtimeConfig, {
    portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
  });
  assert.deepEqual(call!.conf.prevResult, result);
  assert.equal(call!.conf.name, "clinet");
  // keys sorted like libcni's Go map encoding
  assert.deepEqual(Object.keys(call!.conf), [...Object.keys(call!.conf)].sort());
  const cache = JSON.parse(readFileSync(join(dirs.cache, "results", "clinet-ctr1-eth0"), "utf8")) as Record<
    string,
    unknown
  >;
  assert.equal(cache.kind, "cniCacheV1");
  assert.equal(cache.networkName, "clinet");
  assert.deepEqual(cache.result, result);
  const listBytes = Buffer.from(cache.config as string, "base64").toString();
  assert.equal((JSON.parse(listBytes) as { name: string }).name, "clinet");
  assert.deepEqual(Object.values(reservations("clinet")), ["ctr1\r\neth0"]);
});

test("check uses the cached result; human output without --json", async () => {
  const r = await cli(["check", "clinet", ns.path], { CNI_CONTAINERID: "ctr1" });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /clinet eth0: ok/);
  const last = calls().at(-1)!;
  assert.equal(last.env.CNI_COMMAND, "CHECK");
  assert.deepEqual((last.conf.prevResult as { ips: unknown }).ips, [
    { address: "10.55.0.2/24", gateway: "10.55.0.1" },
  ]);
  const missing = await cli(["check", "clinet", ns.path], { CNI_CONTAINERID: "nope" });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no cached result/);
});

test("gc keeps cached attachments and releases the rest; status", async () => {
  assert.equal(
    (await cli(["add", "clinet", ns.name, "--ifname", "eth1"], { CNI_CONTAINERID: "ctr1" })).code,
    0,
  );
  // A leaked reservation (no cache entry), e.g. from a runtime that crashed.
  const leak = await run([join(OUR_BIN, "host-local")], {
    input: JSON.stringify({
      cniVersion: "1.1.0",
      ...conflist("clinet", "1.1.0", "10.55.0.0/24").plugins[0],
      name: "clinet",
    }),
    env: {
      PATH: process.env.PATH,
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "leaked",
      CNI_NETNS: ns.path,
      CNI_IFNAME: "eth0",
      CNI_PATH: OUR_BIN,
    },
  });
  assert.equal(leak.code, 0, leak.stdout);
  assert.equal(Object.keys(reservations("clinet")).length, 3);
  const gc = await cli(["gc", "clinet", "--json"]);
  assert.equal(gc.code, 0, gc.stderr + gc.stdout);
  const out = JSON.parse(gc.stdout) as { ran: boolean; validAttachments: unknown[] };
  assert.equal(out.ran, true);
  assert.deepEqual(out.validAttachments, [
    { containerID: "ctr1", ifname: "eth0" },
    { containerID: "ctr1", ifname: "eth1" },
  ]);
  assert.deepEqual(Object.values(reservations("clinet")).sort(), ["ctr1\r\neth0", "ctr1\r\neth1"]);
  const gcCall = calls().at(-1)!;
  assert.equal(gcCall.env.CNI_COMMAND, "GC");
  assert.deepEqual(gcCall.conf["cni.dev/valid-attachments"], out.validAttachments);
  const st = await cli(["status", "clinet"]);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /clinet: ready/);
  const old = await cli(["gc", "oldnet"]);
  assert.match(old.stdout, /skipped/);
});

test("del runs the chain in reverse with the cached prevResult and removes the cache", async () => {
  const before = calls().length;
  for (const ifname of ["eth0", "eth1"]) {
    const r = await cli(["del", "clinet", ns.name, "--ifname", ifname], { CNI_CONTAINERID: "ctr1" });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(join(dirs.cache, "results", `clinet-ctr1-${ifname}`)));
  }
  const dels = calls().slice(before);
  assert.equal(dels.length, 2);
  assert.equal(dels[0]!.env.CNI_COMMAND, "DEL");
  assert.ok(dels[0]!.conf.prevResult, "prevResult from the cache");
  assert.deepEqual(reservations("clinet"), {});
  // DEL again: idempotent
  assert.equal((await cli(["del", "clinet", ns.name], { CNI_CONTAINERID: "ctr1" })).code, 0);
});

test("a single .conf network, 0.3.1 output; default container ID from the netns", async () => {
  const r = await cli(["add", "single", ns.name, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), {
    cniVersion: "0.3.1",
    ips: [{ version: "4", address: "10.57.0.2/24", gateway: "10.57.0.1" }],
    dns: {},
  });
  const owner = Object.values(reservations("single"))[0]!;
  assert.match(owner, /^cnitool-[0-9a-f]{20}\r\neth0$/);
  assert.equal((await cli(["del", "single", ns.name])).code, 0);
  assert.deepEqual(reservations("single"), {});
});

test("errors and help", async () => {
  const unknown = await cli(["add", "nope", ns.name]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no net configuration with name "nope"/);
  const js = await cli(["add", "nope", ns.name, "--json"]);
  assert.equal((JSON.parse(js.stdout) as { code: number }).code, 7);
  const plugErr = await cli(["add", "clinet", ns.name, "--json"], {
    CNI_ARGS: "IP=10.99.0.1",
    CNI_CONTAINERID: "e1",
  });
  assert.match(
    (JSON.parse(plugErr.stdout) as { msg: string }).msg,
    /plugin type="host-local".*failed \(add\)/,
  );
  assert.equal((await cli(["add", "clinet"])).code, 1);
  assert.match((await cli(["frob"])).stderr, /unknown command/);
  for (const c of ["", "add", "del", "check", "gc", "status"]) {
    const h = await cli(c ? [c, "--help"] : ["--help"]);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /Usage: cni-nft/);
  }
});
