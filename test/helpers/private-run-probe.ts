/**
 * A bench's first steps for test/integration/bench-private-run.test.ts: into a private /run
 * (bench/lib/private-run.ts) unless `--shared-run`, then one JSON line of what it sees: its pid,
 * its mount namespace, the file system on /run, the header line. With `--touch PATH` it creates
 * PATH first (under /run: it must not appear on the machine's); with `--exit N` it exits N; with
 * `--wait` it waits for a signal (and dies of it); with `--network` it asks for a network namespace
 * of its own too.
 */
import { readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { privateRun } from "../../bench/lib/private-run.js";

const { values } = parseArgs({
  options: {
    "shared-run": { type: "boolean" },
    touch: { type: "string" },
    exit: { type: "string" },
    wait: { type: "boolean" },
    network: { type: "boolean" },
  },
});
const header = await privateRun(values["shared-run"], { network: values.network ?? false });
if (values.touch) writeFileSync(values.touch, "");
const run = readFileSync("/proc/self/mountinfo", "utf8")
  .split("\n")
  .map((l) => l.split(" "))
  .filter((f) => f[4] === "/run")
  .at(-1);
const fstype = run?.[run.indexOf("-") + 1];
console.log(
  JSON.stringify({
    pid: process.pid,
    mntns: readlinkSync("/proc/self/ns/mnt"),
    netns: readlinkSync("/proc/self/ns/net"),
    fstype,
    header,
  }),
);
if (values.wait) setInterval(() => undefined, 1000);
else process.exitCode = Number(values.exit ?? 0);
