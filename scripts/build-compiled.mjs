// Compiles every plugin and the CLI into self-contained executables with Bun (a Bun process
// starts in a fraction of Node's time, and runtimes start one per plugin per call):
//
//   dist/compiled/cni-nft-plugins   the multi-call binary, dispatching on its name like busybox
//                                   (entry src/bin/main.ts)
//   dist/compiled/cni-nft-client    the resident daemon's client (docs/resident.md): built with
//                                   the system's cc from src/resident/thin/client.c and call.c (it
//                                   execs cni-nft-plugins for a call the daemon does not serve);
//                                   without a cc, or with CNI_NFT_CLIENT=bun, compiled by Bun from
//                                   src/bin/compiled.ts, all a call the daemon serves loads, and
//                                   src/bin/multicall.ts, loaded when the daemon does not serve it
//   dist/compiled/cni-nft           a link to cni-nft-plugins: the operator CLI
//   dist/compiled/<plugin>          the plugin's front (src/bin/fronts.ts): it answers VERSION
//                                   itself and otherwise execs cni-nft-plugins, or serves the call
//                                   through a daemon's socket. With a cc, a small C executable
//                                   (src/resident/thin/front.c, the client in the same process);
//                                   without one, or with CNI_NFT_FRONT=sh, a /bin/sh script that
//                                   execs cni-nft-client when a daemon's socket exists
//
// Why a front and not a link: runtimes call VERSION before every ADD and DEL (podman: on every
// plugin of the chain), and the front answers in about 1 ms where the compiled runtime needs about
// 17 ms to start; for the other verbs the front costs one more exec. Why C where there is a cc:
// dash costs ~1 ms per call and the sh front a second exec on the daemon's path (docs/performance.md).
// Why two executables: Bun loads an entry's bytecode whole at every start, so the client must be
// an entry of its own, and an executable whose entry is the client pays ~0.5 ms more to load the
// full dispatch as a second entry than cni-nft-plugins does (docs/performance.md): the usual call,
// with no daemon, must not pay for the daemon's.
// CNI_NFT_LINKS=1 makes plain links to cni-nft-plugins instead (which tries the daemon itself).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const bun = "node_modules/bun/bin/bun.exe";
if (!existsSync(bun)) {
  console.error("build-compiled: bun is not installed (npm ci installs it); skipping the compiled binary");
  process.exit(0);
}
const out = "dist/compiled";
const binary = "cni-nft-plugins";
const client = "cni-nft-client";
mkdirSync(out, { recursive: true });

/**
 * Compiles `entries` (the first is the executable's entry) into out/name; returns the inputs the
 * first entry's bundle holds. Built beside and renamed: a test running the old binary meanwhile
 * never finds it missing. Bytecode spares every start the parse of the bundle (a third of a
 * VERSION call's CPU); it needs the CommonJS format, so no entry has a top-level await.
 */
function compile(name, entries, extra = []) {
  const tmp = `${out}/.${name}.${process.pid}`;
  const meta = `${tmp}.meta.json`;
  execFileSync(
    bun,
    [
      ...["build", "--compile", "--minify", "--bytecode", "--format=cjs", `--metafile=${meta}`],
      ...extra,
      ...[...entries, "--outfile", tmp],
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  const outputs = Object.values(JSON.parse(readFileSync(meta, "utf8")).outputs);
  rmSync(meta, { force: true });
  const inputs = Object.keys(outputs.find((o) => o.entryPoint === entries[0])?.inputs ?? {});
  return { inputs, place: () => renameSync(tmp, `${out}/${name}`), drop: () => rmSync(tmp, { force: true }) };
}

// A plugin module that slipped into the client's entry (a static import of multicall.ts or of a
// plugin) would cost every call the daemon serves ~2.5 ms (docs/resident.md): the build fails.
const CLIENT_INPUTS = [
  "src/bin/compiled.ts",
  "src/bin/invocation.ts",
  "src/bin/names.ts",
  "src/bin/resident-first.ts",
  "src/resident/call.ts",
  "src/resident/client.ts",
  "src/resident/protocol.ts",
];
/** Replaces `path` atomically with a link or a file. */
function place(path, write) {
  const t = `${path}.${process.pid}.tmp`;
  rmSync(t, { force: true });
  write(t);
  renameSync(t, path);
}

const C_FLAGS = ["-O2", "-Wall", "-Wextra", "-Werror"];
const THIN = "src/resident/thin";
/** cc -O2 -Wall -Wextra -Werror `args`, in `cwd` (the object directory: no random path is recorded). */
function cc(args, cwd = ".") {
  execFileSync("cc", [...C_FLAGS, ...args], { cwd, stdio: ["ignore", "inherit", "inherit"] });
}
/** Whether the C client and fronts are built: a Bun process's start is most of a served call. */
function haveCc() {
  if (process.env["CNI_NFT_CLIENT"] === "bun") return false;
  try {
    execFileSync("cc", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    console.error("build-compiled: no cc; the resident client is the Bun one, the fronts are sh");
    return false;
  }
}
/** SHA-256 of a file's bytes. */
const sha256 = (file) => createHash("sha256").update(readFileSync(file)).digest("hex");
/**
 * What the daemon serves as its own build (src/resident/peer.ts): name -> SHA-256 of the client
 * and of each C front as written here. So they are written first, and the table is compiled into
 * cni-nft-plugins; a file of such a name beside it that this build did not write is not served.
 */
const clients = {};

// The one VERSION answer every front prints (the sh front's printf adds the newline): the
// multi-call binary's, from the same module (checked against the binary below).
const { versionReply } = await import("../dist/src/cni/version.js");
const version = versionReply().trim();

/** The objects the C client and fronts are linked from, or undefined without a cc. */
const objects = haveCc() ? mkdtempSync(join(tmpdir(), "cni-nft-cc-")) : undefined;
try {
  if (objects) {
    cc(["-c", "-o", `${objects}/call.o`, `${THIN}/call.c`]);
    place(`${out}/${client}`, (t) => cc(["-o", t, `${THIN}/client.c`, `${objects}/call.o`]));
  } else {
    const thin = compile(client, ["src/bin/compiled.ts", "src/bin/multicall.ts"]);
    const extra = thin.inputs.filter((i) => !CLIENT_INPUTS.includes(i));
    if (thin.inputs.length === 0 || extra.length > 0) {
      thin.drop();
      throw new Error(
        `build-compiled: the client entry must not bundle ${extra.join(", ") || "(no metafile entry)"}`,
      );
    }
    thin.place();
  }
  clients[client] = sha256(`${out}/${client}`);

  // Compiled by tsc before this runs.
  const { PLUGINS } = await import("../dist/src/bin/plugins.js");
  const { cFrontTable, shFront } = await import("../dist/src/bin/fronts.js");
  const cFronts = objects !== undefined && process.env["CNI_NFT_FRONT"] !== "sh";
  if (cFronts) cc(["-c", "-o", `${objects}/front.o`, `${THIN}/front.c`]);
  for (const name of Object.keys(PLUGINS)) {
    if (process.env["CNI_NFT_LINKS"] === "1") place(`${out}/${name}`, (t) => symlinkSync(binary, t));
    else if (cFronts) {
      writeFileSync(`${objects}/${name}.c`, cFrontTable(name, version));
      place(`${out}/${name}`, (t) => cc(["-o", resolve(t), "front.o", "call.o", `${name}.c`], objects));
      clients[name] = sha256(`${out}/${name}`);
    } else
      place(`${out}/${name}`, (t) => {
        writeFileSync(t, shFront(name, version));
        chmodSync(t, 0o755);
      });
  }

  const full = compile(
    binary,
    ["src/bin/main.ts"],
    ["--define", `CNI_NFT_BUILD_CLIENTS=${JSON.stringify(JSON.stringify(clients))}`],
  );
  full.place();
  place(`${out}/cni-nft`, (t) => symlinkSync(binary, t));
  const answer = execFileSync(`${out}/${binary}`, [], { env: { CNI_COMMAND: "VERSION" }, encoding: "utf8" });
  if (answer.trim() !== version)
    throw new Error(
      `build-compiled: the fronts answer VERSION with ${version}, ${binary} with ${answer.trim()}`,
    );
} finally {
  if (objects) rmSync(objects, { recursive: true, force: true });
}
