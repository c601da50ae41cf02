// rootless: needs no network namespace and no root (scripts/test.sh runs it for every user)
/**
 * The release artifact (npm run release = build + scripts/release.ts): upstream's tarball layout
 * (flat, ./<plugin>), a sha256sum-checkable checksum file, same bytes on every run, and plugins
 * that run after extraction with GNU tar.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  existsSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
  mkdirSync,
} from "node:fs";
import { join } from "node:path";
import { ROOT, OUR_BIN, tempDir } from "../helpers/cni.js";
import { run, sh } from "../helpers/netns.js";
import { releaseName, writeRelease } from "../../scripts/release.js";

const tmp = tempDir("release");
after(() => tmp.remove());

test("same inputs, same bytes: entry order, owners, modes and times come from nowhere on disk", () => {
  const a = join(tmp.path, "a");
  mkdirSync(a);
  for (const [name, body] of [
    ["zeta", "z"],
    ["alpha", "a"],
    ["cni-nft-plugins", "#!/bin/sh\n"],
  ] as const) {
    writeFileSync(join(a, name), body);
    chmodSync(join(a, name), 0o755);
  }
  symlinkSync("cni-nft-plugins", join(a, "cni-nft"));
  const opts = { source: a, version: "9.9.9", arch: "amd64", mtime: 1_700_000_000 };
  const first = writeRelease({ ...opts, out: join(tmp.path, "out1") });
  utimesSync(join(a, "alpha"), new Date(), new Date(2001, 1, 1));
  chmodSync(join(a, "zeta"), 0o775);
  const second = writeRelease({ ...opts, out: join(tmp.path, "out2") });
  assert.deepEqual(readFileSync(first.tarball), readFileSync(second.tarball));
  assert.equal(first.sha256, second.sha256);
  const gz = readFileSync(first.tarball);
  assert.deepEqual([...gz.subarray(0, 2)], [0x1f, 0x8b]);
  assert.equal(gz.readUInt32LE(4), 0, "gzip header without a timestamp");
});

test("npm run release's artifact: upstream's layout, checksum, runs after extraction", async (t) => {
  if (!existsSync(join(ROOT, "dist", "compiled", "cni-nft-plugins"))) {
    t.skip("needs the compiled plugins (npm run build with bun)");
    return;
  }
  const out = join(tmp.path, "rel");
  const r = await run(["node", "--import", "tsx", "scripts/release.ts", "--out", out], {
    env: { ...process.env, SOURCE_DATE_EPOCH: "1700000000" },
  });
  assert.equal(r.code, 0, r.stderr);
  const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string })
    .version;
  const name = releaseName(version, process.arch === "arm64" ? "arm64" : "amd64");
  assert.deepEqual(readdirSync(out).sort(), [name, `${name}.sha256`]);
  assert.match(
    readFileSync(join(out, `${name}.sha256`), "utf8"),
    new RegExp(`^[0-9a-f]{64}  ${name.replace(/\./g, "\\.")}\n$`),
  );
  assert.match(await sh(["sh", "-c", `cd '${out}' && sha256sum -c '${name}.sha256'`]), /: OK/);

  const listing = (await sh(["tar", "-tvzf", join(out, name)])).trim().split("\n");
  const compiled = join(ROOT, "dist", "compiled");
  assert.deepEqual(
    listing.map((l) => l.split(/\s+/)[5]),
    [
      "./",
      ...readdirSync(compiled)
        .sort()
        .map((f) => `./${f}`),
    ],
    "flat, sorted, every file of dist/compiled",
  );
  for (const l of listing) assert.match(l, /^[-dl]r[-w]x.* root\/root .* 2023-11-1[45] /, l);

  const x = join(tmp.path, "x");
  mkdirSync(x);
  await sh(["tar", "-xzf", join(out, name), "-C", x]);
  const v = await run([join(x, "bridge")], { env: { CNI_COMMAND: "VERSION" } });
  assert.match(v.stdout, /"cniVersion": ?"1.1.0"/);
  const help = await run([join(x, "cni-nft"), "--help"]);
  assert.match(help.stdout, /install/);
  void OUR_BIN;
});
