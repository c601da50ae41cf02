// Compiles every plugin into one self-contained executable with Bun (a Bun process starts in a
// fraction of Node's time, and runtimes start one per plugin per call), then links each plugin
// name to it: dist/compiled/<plugin> -> cni-nft-plugins, dispatched on the name, like busybox.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, renameSync, symlinkSync } from "node:fs";

const bun = "node_modules/bun/bin/bun.exe";
if (!existsSync(bun)) {
  console.error("build-compiled: bun is not installed (npm ci installs it); skipping the compiled binary");
  process.exit(0);
}
const out = "dist/compiled";
mkdirSync(out, { recursive: true });
// Build beside and rename: a test running the old binary meanwhile never finds it missing.
const tmp = `${out}/.cni-nft-plugins.${process.pid}`;
// Bytecode spares every start the parse of the bundle (a third of a VERSION call's CPU); it needs
// the CommonJS format, so src/bin/main.ts has no top-level await.
execFileSync(
  bun,
  ["build", "--compile", "--minify", "--bytecode", "--format=cjs", "src/bin/main.ts", "--outfile", tmp],
  {
    stdio: ["ignore", "ignore", "inherit"],
  },
);
renameSync(tmp, `${out}/cni-nft-plugins`);
const names = [
  "bridge",
  "ptp",
  "portmap",
  "firewall",
  "tuning",
  "host-local",
  "static",
  "loopback",
  "cni-nft",
];
for (const name of names) if (!existsSync(`${out}/${name}`)) symlinkSync("cni-nft-plugins", `${out}/${name}`);
