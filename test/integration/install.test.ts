// rootless: needs no network namespace and no root (scripts/test.sh runs it for every user)
/**
 * `cni-nft install` through the shipped CLI, in temp dirs: atomic placement, ownership (a file it
 * did not install is refused, nothing changes), --force, updates of its own files, conflists with
 * the pod CIDR (given, or read from a Node object served by a fake API server on 127.0.0.1), and
 * plugins that run from where they were installed.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { ensureBuilt, OUR_BIN, tempDir } from "../helpers/cni.js";
import { run } from "../helpers/netns.js";

const CLI = join(OUR_BIN, "cni-nft");
const tmp = tempDir("install");
const src = join(tmp.path, "src");
let n = 0;

/** A small plugin directory shaped like the release: multi-call binary, a CLI link, two fronts. */
function fakeSource(): void {
  mkdirSync(src, { recursive: true });
  writeFileSync(join(src, "cni-nft-plugins"), "#!/bin/sh\necho multicall v1\n");
  chmodSync(join(src, "cni-nft-plugins"), 0o755);
  symlinkSync("cni-nft-plugins", join(src, "cni-nft"));
  for (const p of ["bridge", "portmap"]) {
    writeFileSync(join(src, p), `#!/bin/sh\necho ${p} v1\n`);
    chmodSync(join(src, p), 0o755);
  }
}

function dirs(): { bin: string; conf: string } {
  const base = join(tmp.path, `t${++n}`);
  return { bin: join(base, "bin"), conf: join(base, "net.d") };
}

async function install(args: string[]) {
  const r = await run([CLI, "install", "--json", ...args]);
  return { ...r, json: JSON.parse(r.stdout || "null") as Record<string, unknown> };
}

function listing(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

const CONFLIST = {
  cniVersion: "1.0.0",
  name: "k8s-pod-network",
  plugins: [
    { type: "bridge", bridge: "cni0", isGateway: true, ipam: { type: "host-local" } },
    { type: "portmap", capabilities: { portMappings: true } },
  ],
};
let conflistFile: string;
let api: Server;
let apiUrl: string;

before(async () => {
  await ensureBuilt();
  fakeSource();
  conflistFile = join(tmp.path, "10-pods.conflist");
  writeFileSync(conflistFile, JSON.stringify(CONFLIST));
  writeFileSync(join(tmp.path, "token"), "tok-123\n");
  api = createServer((req, res) => {
    const auth = req.headers.authorization;
    const node = /^\/api\/v1\/nodes\/([^/]+)$/.exec(req.url ?? "")?.[1];
    if (auth !== "Bearer tok-123") return res.writeHead(401).end("{}");
    const nodes: Record<string, object> = {
      "node-a": {
        kind: "Node",
        spec: { podCIDR: "10.244.3.0/24", podCIDRs: ["10.244.3.0/24", "fd00:10:244:3::/64"] },
      },
      "node-b": { kind: "Node", spec: {} },
    };
    if (!node || !nodes[node]) return res.writeHead(404).end('{"kind":"Status","code":404}');
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(nodes[node]));
  });
  await new Promise<void>((r) => api.listen(0, "127.0.0.1", r));
  apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
});
after(() => {
  api.close();
  tmp.remove();
});

test("fresh install: every file placed, the multi-call binary first, a manifest, no temp files", async () => {
  const d = dirs();
  const r = await install(["--source", src, "--bin-dir", d.bin]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const files = r.json["files"] as { path: string; action: string }[];
  assert.deepEqual(
    files.map((f) => [f.path.slice(d.bin.length + 1), f.action]),
    [
      ["cni-nft-plugins", "install"],
      ["cni-nft", "install"],
      ["bridge", "install"],
      ["portmap", "install"],
    ],
  );
  assert.deepEqual(listing(d.bin), [
    ".cni-nft-install.json",
    "bridge",
    "cni-nft",
    "cni-nft-plugins",
    "portmap",
  ]);
  assert.equal(readlinkSync(join(d.bin, "cni-nft")), "cni-nft-plugins");
  assert.equal((await run([join(d.bin, "bridge")])).stdout, "bridge v1\n");
  const manifest = JSON.parse(readFileSync(join(d.bin, ".cni-nft-install.json"), "utf8")) as {
    files: Record<string, string>;
  };
  assert.match(manifest.files[join(d.bin, "bridge")]!, /^sha256:[0-9a-f]{64}$/);
  assert.equal(manifest.files[join(d.bin, "cni-nft")], "link:cni-nft-plugins");

  const again = await install(["--source", src, "--bin-dir", d.bin]);
  assert.equal(again.code, 0);
  assert.ok((again.json["files"] as { action: string }[]).every((f) => f.action === "unchanged"));
});

test("a plugin it did not install is refused and nothing changes; --force replaces it", async () => {
  const d = dirs();
  mkdirSync(d.bin, { recursive: true });
  cpSync("/usr/lib/cni/bridge", join(d.bin, "bridge"));
  writeFileSync(join(d.bin, "vlan"), "upstream's vlan, not ours to touch\n");
  const before = listing(d.bin);
  const r = await install(["--source", src, "--bin-dir", d.bin]);
  assert.equal(r.code, 1);
  assert.equal(r.json["code"], 4);
  assert.match(
    String(r.json["msg"]),
    /refusing to replace files cni-nft did not install.*\/bridge; nothing was changed/,
  );
  assert.deepEqual(listing(d.bin), before, "nothing written, not even the binary");
  assert.deepEqual(readFileSync(join(d.bin, "bridge")), readFileSync("/usr/lib/cni/bridge"));

  const forced = await install(["--source", src, "--bin-dir", d.bin, "--force"]);
  assert.equal(forced.code, 0, forced.stdout);
  const actions = Object.fromEntries(
    (forced.json["files"] as { path: string; action: string }[]).map((f) => [
      f.path.slice(d.bin.length + 1),
      f.action,
    ]),
  );
  assert.equal(actions["bridge"], "replace-foreign");
  assert.equal(readFileSync(join(d.bin, "vlan"), "utf8"), "upstream's vlan, not ours to touch\n");
});

test("its own files are updated; one changed by someone else since is refused", async () => {
  const d = dirs();
  const v2 = join(tmp.path, "src-v2");
  cpSync(src, v2, { recursive: true, verbatimSymlinks: true });
  assert.equal((await install(["--source", src, "--bin-dir", d.bin])).code, 0);
  writeFileSync(join(v2, "bridge"), "#!/bin/sh\necho bridge v2\n");
  const up = await install(["--source", v2, "--bin-dir", d.bin]);
  assert.equal(up.code, 0, up.stdout);
  assert.equal((await run([join(d.bin, "bridge")])).stdout, "bridge v2\n");
  writeFileSync(join(d.bin, "portmap"), "edited by an operator\n");
  writeFileSync(join(v2, "portmap"), "#!/bin/sh\necho portmap v2\n");
  const refused = await install(["--source", v2, "--bin-dir", d.bin]);
  assert.equal(refused.code, 1);
  assert.match(String(refused.json["msg"]), /\/portmap;/);
  assert.equal(readFileSync(join(d.bin, "portmap"), "utf8"), "edited by an operator\n");
});

test("--conflist with --pod-cidr: host-local gets the node's range, written into the conf dir", async () => {
  const d = dirs();
  const r = await install([
    "--source",
    src,
    "--bin-dir",
    d.bin,
    "--conf-dir",
    d.conf,
    "--conflist",
    conflistFile,
    "--pod-cidr",
    "10.244.7.0/24",
  ]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const written = JSON.parse(readFileSync(join(d.conf, "10-pods.conflist"), "utf8")) as typeof CONFLIST;
  assert.deepEqual(written.plugins[0]!.ipam, { type: "host-local", ranges: [[{ subnet: "10.244.7.0/24" }]] });
  assert.deepEqual(written.plugins[1], CONFLIST.plugins[1]);
});

test("--pod-cidr-from-node reads spec.podCIDRs from the API with the service account token", async () => {
  const d = dirs();
  const base = ["--source", src, "--bin-dir", d.bin, "--conf-dir", d.conf, "--conflist", conflistFile];
  const kube = ["--kube-api", apiUrl, "--kube-token-file", join(tmp.path, "token")];
  const r = await install([...base, ...kube, "--pod-cidr-from-node", "node-a"]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual(r.json["podCidrs"], ["10.244.3.0/24", "fd00:10:244:3::/64"]);
  const written = JSON.parse(readFileSync(join(d.conf, "10-pods.conflist"), "utf8")) as typeof CONFLIST;
  assert.deepEqual(written.plugins[0]!.ipam, {
    type: "host-local",
    ranges: [[{ subnet: "10.244.3.0/24" }], [{ subnet: "fd00:10:244:3::/64" }]],
  });

  const d2 = dirs();
  const base2 = ["--source", src, "--bin-dir", d2.bin, "--conf-dir", d2.conf, "--conflist", conflistFile];
  const none = await install([...base2, ...kube, "--pod-cidr-from-node", "node-b"]);
  assert.equal(none.code, 1);
  assert.match(String(none.json["msg"]), /node node-b has no spec.podCIDR/);
  const missing = await install([...base2, ...kube, "--pod-cidr-from-node", "node-z"]);
  assert.match(String(missing.json["msg"]), /reading node node-z .*HTTP 404/);
  assert.deepEqual([listing(d2.bin), listing(d2.conf)], [[], []], "failures before any write");
});

test("bad input is refused with a message naming it, before anything is written", async () => {
  const d = dirs();
  const bad = join(tmp.path, "bad.conflist");
  writeFileSync(bad, JSON.stringify({ ...CONFLIST, plugins: [{ type: "bridge;rm" }] }));
  const cases: [string[], RegExp, number][] = [
    [
      ["--conflist", conflistFile, "--pod-cidr", "10.244.7.1/24"],
      /--pod-cidr: "10.244.7.1\/24" is not a network address/,
      7,
    ],
    [["--conflist", conflistFile, "--pod-cidr", "banana"], /is not a CIDR/, 7],
    [["--pod-cidr", "10.0.0.0/24"], /--pod-cidr needs --conflist/, 7],
    [["--conflist", bad], /plugins\[0\].type must be a plugin name/, 7],
    [["--conflist", join(tmp.path, "absent.conflist")], /ENOENT/, 7],
    [["--bogus"], /Unknown option '--bogus'/, 4],
    [["--source", tmp.path], /holds no cni-nft-plugins/, 4],
  ];
  for (const [args, msg, code] of cases) {
    const r = await install(["--source", src, "--bin-dir", d.bin, "--conf-dir", d.conf, ...args]);
    assert.equal(r.code, 1, args.join(" "));
    assert.match(String(r.json["msg"]), msg, args.join(" "));
    assert.equal(r.json["code"], code, args.join(" "));
  }
  assert.deepEqual([listing(d.bin), listing(d.conf)], [[], []]);
});

test("the shipped plugins, installed, run from their new place", async (t) => {
  if (!existsSync(join(OUR_BIN, "cni-nft-plugins"))) {
    t.skip("needs the compiled plugins (dist/compiled)");
    return;
  }
  const d = dirs();
  const r = await install(["--source", OUR_BIN, "--bin-dir", d.bin]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const v = await run([join(d.bin, "host-local")], { env: { CNI_COMMAND: "VERSION" } });
  assert.match(v.stdout, /"supportedVersions"/);
  const help = await run([join(d.bin, "cni-nft"), "install", "--help"]);
  assert.match(help.stdout, /Usage: cni-nft install/);
  const again = await run([join(d.bin, "cni-nft"), "install", "--bin-dir", d.bin, "--json"]);
  assert.equal(again.code, 0, again.stdout + again.stderr);
  const files = (JSON.parse(again.stdout) as { files: { action: string }[]; source: string }).files;
  assert.ok(
    files.every((f) => f.action === "unchanged"),
    "installing from the installed copy changes nothing",
  );
});

test("--resident adds the resident daemon's systemd units, pointed at the bin dir; without it, none", async () => {
  const d = dirs();
  const systemd = join(d.bin, "..", "systemd");
  const plain = await install(["--source", src, "--bin-dir", d.bin]);
  assert.equal(plain.code, 0, plain.stderr + plain.stdout);
  assert.deepEqual(listing(systemd), []);
  const r = await install(["--source", src, "--bin-dir", d.bin, "--resident", "--systemd-dir", systemd]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.deepEqual(listing(systemd), ["cni-nft-resident.service", "cni-nft-resident.socket"]);
  assert.match(
    readFileSync(join(systemd, "cni-nft-resident.service"), "utf8"),
    new RegExp(`^ExecStart=${d.bin}/cni-nft resident --idle-exit 600$`, "m"),
  );
  const files = r.json["files"] as { path: string; action: string }[];
  assert.deepEqual(
    files.filter((f) => f.path.startsWith(systemd)).map((f) => f.action),
    ["install", "install"],
  );
  const lone = await install(["--source", src, "--bin-dir", d.bin, "--systemd-dir", systemd]);
  assert.equal(lone.code, 1);
  assert.match(JSON.stringify(lone.json), /--systemd-dir needs --resident/);
});
