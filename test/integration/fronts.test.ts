// rootless: runs the fronts against a stand-in for cni-nft-plugins; no namespace
/**
 * The C fronts (src/resident/thin/front.c; docs/resident.md "The fronts": dist/compiled's when
 * the build made them, else built here as scripts/build-compiled.mjs builds them) against the sh
 * front (src/bin/fronts.ts): every plugin's VERSION answer byte for byte, and, for everything else, the
 * same program started with the same argv, environment and stdin, the same exit code and stderr:
 * no socket, arguments, a relative path, a symlink to the front, CNI_NFT_RESIDENT=off, a socket
 * whose daemon refuses (the C front asks it itself; the sh front through cni-nft-client; the
 * daemon gets the same request from both), a verb no daemon serves, and no cni-nft-plugins beside.
 * The stand-in prints what it was started with. Known difference, filtered: dash exports PWD.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { ROOT, tempDir } from "../helpers/cni.js";
import { run, type RunResult } from "../helpers/netns.js";
import { COMPILED, fileHead, haveCompiled, isCFront } from "../helpers/resident.js";
import { PLUGIN_NAMES } from "../../src/bin/names.js";
import { cFrontTable, shFront } from "../../src/bin/fronts.js";
import { SHIM_MARKER } from "../../src/cni/ipam.js";
import { FrameKind, FrameReader, encodeFrame, type Frame } from "../../src/resident/protocol.js";

const CLIENT = join(COMPILED, "cni-nft-client");
// The sh front's way to a daemon is the C client (the Bun one is tens of megabytes).
const skip = !haveCompiled
  ? "no compiled binary (npm run build)"
  : spawnSync("cc", ["--version"]).status !== 0
    ? "no cc"
    : !existsSync(CLIENT) || statSync(CLIENT).size > 1 << 20
      ? "no C client (npm run build with a cc)"
      : false;
const dir = tempDir("fronts");
after(() => dir.remove());

/** The multi-call binary's VERSION answer: what the build gives every front. */
function version(): string {
  return execFileSync(join(COMPILED, "cni-nft-plugins"), [], {
    env: { CNI_COMMAND: "VERSION" },
    encoding: "utf8",
  }).trim();
}

let built: string | undefined;
/** The directory of the C fronts under test: the build's, or built here from the same table. */
function cFronts(): string {
  if (isCFront()) return COMPILED;
  if (built) return built;
  const out = join(dir.path, "c-fronts");
  mkdirSync(out);
  const thin = join(ROOT, "src", "resident", "thin");
  const cc = (...args: string[]): void => {
    execFileSync("cc", ["-O2", "-Wall", "-Wextra", "-Werror", ...args], { cwd: out });
  };
  cc("-c", "-o", "call.o", join(thin, "call.c"));
  cc("-c", "-o", "front.o", join(thin, "front.c"));
  const answer = version();
  for (const name of PLUGIN_NAMES) {
    writeFileSync(join(out, `${name}.c`), cFrontTable(name, answer));
    cc("-o", name, "front.o", "call.o", `${name}.c`);
  }
  return (built = out);
}

test(
  "every plugin's C front answers VERSION with the sh front's bytes; the marker is in its first 4 KiB",
  { skip },
  async () => {
    const answer = version();
    const sh = join(dir.path, "version-sh");
    mkdirSync(sh);
    for (const name of PLUGIN_NAMES) {
      writeFileSync(join(sh, name), shFront(name, answer));
      chmodSync(join(sh, name), 0o755);
    }
    const envs: Array<[Record<string, string>, string[]]> = [
      [{ CNI_COMMAND: "VERSION" }, []],
      [{ CNI_COMMAND: "VERSION", CNI_NFT_RESIDENT_SOCKET: dir.path, CNI_NFT_PLUGIN: "bridge" }, ["x", "y"]],
    ];
    for (const name of PLUGIN_NAMES) {
      const c = join(cFronts(), name);
      assert.ok(fileHead(c, 4).toString("latin1") === "\x7fELF", `${name} is a C front`);
      assert.ok(fileHead(c, 4096).includes(SHIM_MARKER), `${name}: IPAM delegation must recognise it`);
      for (const [env, args] of envs) {
        const want = await run([join(sh, name), ...args], { env });
        assert.equal(want.code, 0, want.stderr);
        assert.deepEqual(await run([c, ...args], { env }), want, `${name} ${JSON.stringify(env)}`);
      }
    }
  },
);

// Prints what it was started with, on stdout, and exits 7 with a line on stderr.
const STAND_IN = String.raw`#include <stdio.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv) {
  printf("argv0=%s\n", argv[0]);
  for (int i = 1; i < argc; i++) printf("arg=%s\n", argv[i]);
  for (char **e = environ; *e; e++) printf("env=%s\n", *e);
  printf("stdin=");
  fflush(stdout);
  char b[4096];
  ssize_t n;
  while ((n = read(0, b, sizeof b)) > 0) fwrite(b, 1, (size_t)n, stdout);
  fprintf(stderr, "stand-in ran\n");
  return 7;
}
`;

/** Layouts front-c (the C front) and front-s (the sh front), each with the stand-in beside it. */
function layout(): { root: string; standIn: string } {
  const root = join(dir.path, "calls");
  mkdirSync(root);
  const standIn = join(root, "stand-in");
  writeFileSync(`${standIn}.c`, STAND_IN);
  execFileSync("cc", ["-O2", "-o", standIn, `${standIn}.c`]);
  for (const kind of ["c", "s"]) {
    for (const d of [`front-${kind}`, `bare-${kind}`, `link-${kind}`]) mkdirSync(join(root, d));
    for (const d of [`front-${kind}`, `bare-${kind}`]) {
      const front = join(root, d, "tuning");
      if (kind === "c") copyFileSync(join(cFronts(), "tuning"), front);
      else writeFileSync(front, shFront("tuning", version()));
      chmodSync(front, 0o755);
    }
    copyFileSync(standIn, join(root, `front-${kind}`, "cni-nft-plugins"));
    chmodSync(join(root, `front-${kind}`, "cni-nft-plugins"), 0o755);
    symlinkSync(`../front-${kind}/tuning`, join(root, `link-${kind}`, "tuning"));
  }
  // The sh front's client: the C one, which execs the stand-in beside it.
  copyFileSync(join(COMPILED, "cni-nft-client"), join(root, "front-s", "cni-nft-client"));
  chmodSync(join(root, "front-s", "cni-nft-client"), 0o755);
  return { root, standIn };
}

/** A run with the layouts' names made one, PWD dropped, the environment sorted. */
function normal(r: RunResult, clientArgv0 = false): RunResult {
  const one = (s: string): string => s.replace(/\b(front|bare|link)-[cs]\b/g, "$1-X");
  const lines = one(r.stdout).split("\n");
  const env = lines.filter((l) => l.startsWith("env=") && !l.startsWith("env=PWD=")).sort();
  const rest = lines
    .filter((l) => !l.startsWith("env="))
    .map((l) => (clientArgv0 ? l.replace(/^argv0=(.*)\/cni-nft-client$/, "argv0=$1/cni-nft-plugins") : l));
  return { code: r.code, stderr: one(r.stderr), stdout: [...rest, ...env].join("\n") };
}

/** A daemon that refuses every call; resolves the request headers it got. */
async function refusingDaemon(path: string): Promise<{ headers: Record<string, unknown>[]; close(): void }> {
  const headers: Record<string, unknown>[] = [];
  const server = createServer((sock) => {
    const reader = new FrameReader();
    const frames: Frame[] = [];
    sock.on("data", (chunk: Buffer) => {
      frames.push(...reader.push(chunk));
      if (frames.length !== 2) return;
      headers.push(JSON.parse(new TextDecoder().decode(frames[0]!.payload)) as Record<string, unknown>);
      sock.end(encodeFrame(FrameKind.Refused, "refused by the test"));
    });
    sock.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { headers, close: () => server.close() };
}

test(
  "otherwise the C front starts what the sh front starts, with the same argv, environment and stdin",
  { skip },
  async () => {
    const { root } = layout();
    const run2 = (
      how: string,
      front: (kind: "c" | "s") => string,
      env: Record<string, string>,
      args: string[] = [],
      clientArgv0 = false,
    ): Promise<[RunResult, RunResult, string]> =>
      Promise.all([
        run([front("c"), ...args], { env, input: '{"cniVersion":"1.0.0"}', cwd: root }).then((r) =>
          normal(r),
        ),
        run([front("s"), ...args], { env, input: '{"cniVersion":"1.0.0"}', cwd: root }).then((r) =>
          normal(r, clientArgv0),
        ),
        Promise.resolve(how),
      ]);
    const base = {
      PATH: process.env["PATH"]!,
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "fr",
      CNI_NFT_PLUGIN: "bridge", // the caller's is replaced by the front's name
      CNI_NFT_RESIDENT_SOCKET: join(root, "absent.sock"),
    };
    const run_ = join(root, "run");
    mkdirSync(run_, { mode: 0o700 });
    const socket = join(run_, "plugins.sock");
    const daemon = await refusingDaemon(socket);
    try {
      const cases = [
        await run2("no socket", (k) => join(root, `front-${k}`, "tuning"), base),
        await run2("arguments", (k) => join(root, `front-${k}`, "tuning"), base, ["daemon", "a b"]),
        await run2("a relative path", (k) => `./front-${k}/tuning`, base),
        await run2("a symlink", (k) => join(root, `link-${k}`, "tuning"), base),
        await run2("off", (k) => join(root, `front-${k}`, "tuning"), {
          ...base,
          CNI_NFT_RESIDENT_SOCKET: socket,
          CNI_NFT_RESIDENT: "off",
        }),
        await run2(
          "a socket, refused",
          (k) => join(root, `front-${k}`, "tuning"),
          { ...base, CNI_NFT_RESIDENT_SOCKET: socket },
          [],
          true,
        ),
        await run2(
          "a verb no daemon serves",
          (k) => join(root, `front-${k}`, "tuning"),
          { ...base, CNI_NFT_RESIDENT_SOCKET: socket, CNI_COMMAND: "NOPE" },
          [],
          true,
        ),
        await run2("no cni-nft-plugins", (k) => join(root, `bare-${k}`, "tuning"), base),
      ];
      for (const [c, s, how] of cases) assert.deepEqual(c, s, how);
      const [plain] = cases[0]!;
      assert.equal(plain.code, 7);
      assert.match(plain.stdout, /^argv0=.*\/front-X\/cni-nft-plugins\nstdin=\{"cniVersion":"1.0.0"\}\n/);
      assert.match(plain.stdout, /^env=CNI_NFT_PLUGIN=tuning$/m);
      assert.match(cases[5]![0].stdout, /^env=CNI_NFT_RESIDENT_HANDOFF=here$/m);
      assert.equal(cases[7]![0].code, 127);
      assert.match(cases[7]![0].stderr, /: \d+: exec: .*\/bare-X\/cni-nft-plugins: not found\n$/);
      // Root: both asked the daemon, with the same request (a socket only root may use otherwise).
      if (process.getuid?.() === 0) {
        assert.equal(daemon.headers.length, 2);
        const [fromC, fromSh] = daemon.headers.map((h): Record<string, unknown> => {
          const env = { ...(h["env"] as Record<string, string>) };
          delete env["PWD"];
          return { ...h, env };
        });
        assert.deepEqual(fromC, fromSh);
        assert.equal(fromC!["plugin"], "tuning");
      }
    } finally {
      daemon.close();
    }
  },
);
