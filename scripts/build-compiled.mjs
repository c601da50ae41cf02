// Compiles every plugin and the CLI into one self-contained executable with Bun (a Bun process
// starts in a fraction of Node's time, and runtimes start one per plugin per call):
//
//   dist/compiled/cni-nft-plugins   the multi-call binary, dispatching on its name like busybox
//   dist/compiled/cni-nft           a link to it: the operator CLI
//   dist/compiled/<plugin>          a tiny /bin/sh front: it answers VERSION itself and execs the
//                                   binary for every other verb
//
// Why a shell front and not a link: runtimes call VERSION before every ADD and DEL (podman: on
// every plugin of the chain), and dash answers in about 1.5 ms where the compiled runtime needs
// about 17 ms to start; for the other verbs the front costs one more exec (about 1.5 ms).
// CNI_NFT_LINKS=1 makes plain links instead.
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";

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
// the CommonJS format, so src/bin/main.ts has no top-level await.
execFileSync(
  bun,
  ["build", "--compile", "--minify", "--bytecode", "--format=cjs", "src/bin/main.ts", "--outfile", tmp],
  { stdio: ["ignore", "ignore", "inherit"] },
);
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
