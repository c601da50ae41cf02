// Compiles every plugin and the CLI into one self-contained executable with Bun (a Bun process
// starts in a fraction of Node's time, and runtimes start one per plugin per call):
//
//   dist/compiled/cni-nft-plugins   the multi-call binary, dispatching on its name like busybox;
//                                   two entry points: src/bin/compiled.ts (the resident daemon's
//                                   client, all a call the daemon serves loads) and
//                                   src/bin/multicall.ts (everything else, loaded only when needed)
//   dist/compiled/cni-nft           a link to it: the operator CLI
//   dist/compiled/<plugin>          a tiny /bin/sh front: it answers VERSION itself and execs the
//                                   binary for every other verb
//
// Why a shell front and not a link: runtimes call VERSION before every ADD and DEL (podman: on
// every plugin of the chain), and dash answers in about 1.5 ms where the compiled runtime needs
// about 17 ms to start; for the other verbs the front costs one more exec (about 1.5 ms).
// CNI_NFT_LINKS=1 makes plain links instead.
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";

const bun = "node_modules/bun/bin/bun.exe";
if (!existsSync(bun)) {
  console.error("build-compiled: bun is not installed (npm ci installs it); skipping the compiled binary");
  process.exit(0);
}
const out = "dist/compiled";
const binary = "cni-nft-plugins";
mkdirSync(out, { recursive: true });
// Build beside and rename: a test running the old binary meanwhile never finds it missing.
const tmp = `${out}/.${binary}.${process.pid}`;
// Bytecode spares every start the parse of the bundle (a third of a VERSION call's CPU); it needs
// the CommonJS format, so neither entry has a top-level await.
const entry = "src/bin/compiled.ts";
const meta = `${tmp}.meta.json`;
execFileSync(
  bun,
  [
    ...["build", "--compile", "--minify", "--bytecode", "--format=cjs", `--metafile=${meta}`],
    ...[entry, "src/bin/multicall.ts", "--outfile", tmp],
  ],
  { stdio: ["ignore", "ignore", "inherit"] },
);
// Bun loads the entry's bytecode whole at every start: a plugin module that slipped into it (a
// static import of multicall.ts or of a plugin) would cost every call the daemon serves ~2.5 ms
// (docs/resident.md). The build fails instead.
const CLIENT_INPUTS = [
  entry,
  "src/bin/invocation.ts",
  "src/bin/names.ts",
  "src/resident/call.ts",
  "src/resident/client.ts",
  "src/resident/protocol.ts",
];
const outputs = Object.values(JSON.parse(readFileSync(meta, "utf8")).outputs);
rmSync(meta, { force: true });
const entryOut = outputs.find((o) => o.entryPoint === entry);
const extra = Object.keys(entryOut?.inputs ?? {}).filter((i) => !CLIENT_INPUTS.includes(i));
if (!entryOut || extra.length > 0) {
  rmSync(tmp, { force: true });
  throw new Error(
    `build-compiled: the client entry ${entry} must not bundle ${extra.join(", ") || "(no metafile entry)"}`,
  );
}
renameSync(tmp, `${out}/${binary}`);

/** Replaces `path` atomically with a link or a file. */
function place(path, write) {
  const t = `${path}.${process.pid}.tmp`;
  rmSync(t, { force: true });
  write(t);
  renameSync(t, path);
}

place(`${out}/cni-nft`, (t) => symlinkSync(binary, t));
const version = execFileSync(`${out}/${binary}`, [], {
  env: { CNI_COMMAND: "VERSION" },
  encoding: "utf8",
}).trim();
if (version.includes("'")) throw new Error("VERSION answer cannot be quoted for sh");
const { PLUGINS } = await import("../dist/src/bin/plugins.js"); // compiled by tsc before this runs
const plugins = Object.keys(PLUGINS);
for (const name of plugins) {
  if (process.env["CNI_NFT_LINKS"] === "1") {
    place(`${out}/${name}`, (t) => symlinkSync(binary, t));
    continue;
  }
  const front = `#!/bin/sh
# cni-nft-multicall front for the ${name} plugin (scripts/build-compiled.mjs): VERSION answered here,
# every other verb by the compiled binary beside this file.
if [ "$CNI_COMMAND" = VERSION ]; then
  printf '%s\\n' '${version}'
  exit 0
fi
self=$0
[ -L "$self" ] && self=$(readlink -f "$self")
case $self in */*) dir=\${self%/*} ;; *) dir=. ;; esac
CNI_NFT_PLUGIN=${name} exec "$dir/${binary}" "$@"
`;
  place(`${out}/${name}`, (t) => {
    writeFileSync(t, front);
    chmodSync(t, 0o755);
  });
}
