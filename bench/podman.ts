/**
 * Debian's podman 4.3, unmodified, setting up and tearing down a container's network with a
 * published port: on its CNI backend with cni-nft's compiled plugins (nftables and iptables
 * backends, in-process and as thin clients of a resident daemon) against its netavark backend
 * (Debian's netavark 1.4), side by side, rounds interleaved. Timed: `podman start` of a created container (network setup and the container's
 * start) and `podman stop -t 0` (the container's stop and network teardown); the same with
 * `--network none` gives the part that is not networking, so "network" = with - without.
 *
 * Nothing leaks: podman runs inside a throwaway network namespace (its bridge, rules and
 * container namespaces live there), in a mount namespace of its own where /var/lib/cni and
 * /run/netns are temporary directories, with its own storage, config and run directories, under
 * a /run of the bench's own (bench/lib/private-run.ts: the plugins' lock files are the run's, not
 * the machine's; `--shared-run` keeps the machine's).
 * The resident flavours' daemons (docs/resident.md) are started by the same script, so they share
 * podman's namespaces (the only callers they serve); each counts the calls it served and refused,
 * printed beside the table (a refused call runs in-process and would be timed as resident).
 * On SIGINT, SIGTERM or SIGHUP the script is stopped (its trap removes the containers and stops
 * the daemons), then what is left in the namespace is killed and everything removed.
 * Needs root, podman, runc and busybox; netavark is taken from /usr/lib/podman/netavark
 * (`apt-get install netavark`). Skips with a message when something is missing.
 *
 *   node --import tsx bench/podman.ts [--rounds 10] [--shared-run]
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { median } from "./lib/chain-run.js";
import { removeNamespaces } from "./lib/namespaces.js";
import { residentCounts, describeCounts } from "./lib/resident.js";
import { saveResults } from "./lib/results.js";
import { benchArgs, intArg } from "./lib/args.js";
import { privateRun, SHARED_RUN_OPTION, SHARED_RUN_USAGE } from "./lib/private-run.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OURS = join(ROOT, "dist/compiled");
const NETAVARK = "/usr/lib/podman/netavark";

const onPath = (t: string): boolean =>
  (process.env["PATH"] ?? "").split(":").some((d) => existsSync(join(d, t)));

/**
 * The backends compared: name, podman's network_backend, how the conflist is switched, whether
 * the plugins are clients of a resident daemon.
 */
const BACKENDS = [
  { name: "cni-nft, nftables backends", key: "nft", backend: "cni", nftables: true, resident: false },
  { name: "cni-nft, iptables backends", key: "ipt", backend: "cni", nftables: false, resident: false },
  { name: "cni-nft nftables, resident", key: "nftr", backend: "cni", nftables: true, resident: true },
  { name: "cni-nft iptables, resident", key: "iptr", backend: "cni", nftables: false, resident: true },
  { name: "netavark 1.4", key: "nav", backend: "netavark", nftables: false, resident: false },
] as const;
/**
 * conmon runs `podman container cleanup` when a container exits, which may tear the network down
 * before `podman stop` does; podman gives conmon only `conmon_env_vars` (this PATH by default),
 * so the resident flavours name their socket there too, or those calls would run in-process.
 */
const CONMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** Plugin calls a round makes on a CNI backend: ADD and DEL of bridge, portmap, firewall, tuning. */
const CALLS_PER_ROUND = 8;

/**
 * `ip netns exec` mounts a fresh /sys for the namespace, which hides the cgroup mounts runc needs:
 * the commands that mount them again, as this host has them (from /proc/self/mountinfo).
 */
function cgroupMounts(): string[] {
  const out: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const [left, right] = line.split(" - ");
    const at = left?.split(" ")[4];
    if (!at?.startsWith("/sys/fs/cgroup") || !right) continue;
    const [type, , superOpts] = right.split(" ");
    const opts = (superOpts ?? "").split(",").filter((o) => o !== "rw" && o !== "ro");
    if (type === "tmpfs") out.push(`mount -t tmpfs -o mode=755 tmpfs ${at}`);
    else if (type === "cgroup2") out.push(`mkdir -p ${at}`, `mount -t cgroup2 cgroup2 ${at}`);
    else if (type === "cgroup") {
      const o = opts.every((x) => x.startsWith("name=")) ? ["none", ...opts] : opts;
      out.push(`mkdir -p ${at}`, `mount -t cgroup -o ${o.join(",")} cgroup ${at}`);
    }
  }
  return out;
}

/** The whole run as one shell script, so every podman call shares one mount namespace. */
function script(t: string, rounds: number): string {
  const confs = BACKENDS.map(
    (b, i) => `
mkdir -p ${t}/${b.key}/net.d
cat > ${t}/${b.key}/containers.conf <<EOF
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[network]
network_backend = "${b.backend}"
cni_plugin_dirs = ["${OURS}"]
network_config_dir = "${t}/${b.key}/net.d"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "${t}/${b.key}/events.log"
tmp_dir = "${t}/${b.key}/tmp"
helper_binaries_dir = ["/usr/lib/podman"]
${b.resident ? `conmon_env_vars = ["PATH=${CONMON_PATH}", "CNI_NFT_RESIDENT_SOCKET=${t}/${b.key}/resident/plugins.sock"]` : ""}
EOF
cat > ${t}/${b.key}/storage.conf <<EOF
[storage]
driver = "overlay"
graphroot = "${t}/${b.key}/storage"
runroot = "${t}/${b.key}/run"
EOF
${b.resident ? startDaemon(t, b.key) : `dticks_${b.key}() { echo 0; }`}
env_${b.key}() { ${b.resident ? `CNI_NFT_RESIDENT_SOCKET=${t}/${b.key}/resident/plugins.sock ` : ""}CONTAINERS_CONF=${t}/${b.key}/containers.conf CONTAINERS_STORAGE_CONF=${t}/${b.key}/storage.conf "$@"; }
env_${b.key} podman import -q ${t}/rootfs.tar localhost/bench-busybox:latest >/dev/null
env_${b.key} podman network create --disable-dns --subnet 10.89.${100 + i}.0/24 bench${b.key} >/dev/null
${b.nftables ? `switch_nft ${t}/${b.key}/net.d/bench${b.key}.conflist` : ""}`,
  );
  const round = (net: string, key: string, port: number, label: string): string => `
  env_${key} podman create -q --name c${key}${net === "none" ? "n" : ""}$i --network ${net} ${
    net === "none" ? "" : `-p ${port}:80`
  } localhost/bench-busybox:latest httpd -f -p 80 -h /www >/dev/null
  times >${t}/tm0; d0=$(dticks_${key})
  t0=$(date +%s%N); env_${key} podman start c${key}${net === "none" ? "n" : ""}$i >/dev/null; t1=$(date +%s%N)
  times >${t}/tm1; d1=$(dticks_${key})
  ${net === "none" ? "" : `[ $i = 1 ] && served ${port} "${label}"`}
  t2=$(date +%s%N); env_${key} podman stop -t 0 c${key}${net === "none" ? "n" : ""}$i >/dev/null; t3=$(date +%s%N)
  env_${key} podman rm c${key}${net === "none" ? "n" : ""}$i >/dev/null
  c0=$(cpums ${t}/tm0); c1=$(cpums ${t}/tm1)
  echo "RESULT ${label}|$(( (t1 - t0) / 1000 ))|$(( (t3 - t2) / 1000 ))|$(( c1 - c0 + (d1 - d0) * 10 ))"`;
  const keys = BACKENDS.map((b) => b.key).join(" ");
  return `set -euo pipefail
daemons=""
cleanup() {
  for k in ${keys}; do
    env_$k podman rm -af -t 0 >/dev/null 2>&1 || true
    env_$k podman system reset -f >/dev/null 2>&1 || true
  done
  for p in $daemons; do kill -TERM $p 2>/dev/null || true; done
  for p in $daemons; do while kill -0 $p 2>/dev/null; do sleep 0.1; done; done
}
# CPU ms of this shell's waited-for children (podman and what it waited for) from a "times" output.
cpums() { awk 'NR == 2 { split($1, u, "m"); split($2, s, "m"); printf "%d", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1000 }' "$1"; }
trap cleanup EXIT
trap 'exit 143' INT TERM HUP
ip link set lo up
${cgroupMounts().join("\n")}
mkdir -p ${t}/varlibcni ${t}/netns /var/lib/cni
mount --bind ${t}/varlibcni /var/lib/cni
mount --bind ${t}/netns /run/netns
switch_nft() {
  python3 - "$1" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
for x in c["plugins"]:
    if x["type"] == "bridge": x["ipMasqBackend"] = "nftables"
    if x["type"] in ("portmap", "firewall"): x["backend"] = "nftables"
json.dump(c, open(p, "w"), indent=2)
PY
}
served() {
  for k in $(seq 1 40); do
    if exec 3<>/dev/tcp/127.0.0.1/$1 2>/dev/null; then
      printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' >&3
      if grep -q "bench page" <&3; then exec 3<&-; echo "SERVED $2"; return; fi
      exec 3<&-
    fi
    sleep 0.25
  done
  echo "NOT-SERVED $2"
}
${confs.join("\n")}
for i in $(seq 1 ${rounds}); do
${BACKENDS.map((b, k) => round(`bench${b.key}`, b.key, 18100 + k, b.name)).join("\n")}
${round("none", "nav", 0, "--network none (netavark's podman)")}
done
trap - EXIT
cleanup
${BACKENDS.filter((b) => b.resident)
  .map((b) => `echo "RESIDENT ${b.name}|$(base64 -w0 ${t}/${b.key}/resident.log)"`)
  .join("\n")}
`;
}

/** Starts a resident daemon in the script's namespaces (podman's), and waits until it listens. */
function startDaemon(t: string, key: string): string {
  return `mkdir -m 700 ${t}/${key}/resident
${join(OURS, "cni-nft")} resident --log-calls --socket ${t}/${key}/resident/plugins.sock 2>${t}/${key}/resident.log &
daemons="$daemons $!"
dpid_${key}=$!
# CPU ticks of the daemon and its waited-for children so far (/proc/PID/stat: utime stime cutime cstime).
dticks_${key}() { local st; read -r -a st </proc/$dpid_${key}/stat; echo $(( st[13] + st[14] + st[15] + st[16] )); }
for k in $(seq 1 300); do grep -q "listening on" ${t}/${key}/resident.log && break; sleep 0.1; done
grep -q "listening on" ${t}/${key}/resident.log || { cat ${t}/${key}/resident.log >&2; exit 1; }`;
}

/** Runs the script in `host`, in a process group of its own; a signal stops the group first. */
function runScript(host: string, file: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn("ip", ["netns", "exec", host, "bash", file], { detached: true });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const stop = (signal: NodeJS.Signals): void => {
      console.error(`\n${signal}: stopping the run (its containers and daemons are removed)`);
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        // gone already
      }
      child.once("close", () => process.exit(128 + (signal === "SIGINT" ? 2 : signal === "SIGHUP" ? 1 : 15)));
    };
    const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
    for (const s of signals) process.on(s, stop);
    child.on("close", (code) => {
      for (const s of signals) process.off(s, stop);
      resolve({ code: code ?? 1, out, err });
    });
  });
}

/** A resident flavour's daemon counts, from the log the script prints; every call must be served. */
function checkResident(out: string, rounds: number): string[] {
  const lines: string[] = [];
  for (const m of out.matchAll(/^RESIDENT (.+)\|(.*)$/gm)) {
    const log = Buffer.from(m[2]!, "base64").toString("utf8");
    const c = residentCounts(log);
    const want = rounds * CALLS_PER_ROUND;
    const ok = c.refused === 0 && c.served === want;
    // --log-calls: "done <plugin> <verb> <id>/<ifname>: ..." per call served.
    const verbs = ["ADD", "DEL"].map((v) => `${v} ${log.split(new RegExp(`done \\S+ ${v} `)).length - 1}`);
    lines.push(
      `${m[1]}: ${describeCounts(c)} (${verbs.join(", ")}); ${want} expected${ok ? "" : " -- NOT the daemon's figures"}`,
    );
  }
  return lines;
}

const NONE = "--network none (netavark's podman)";
type Times = Map<string, { start: number[]; stop: number[]; startCpu: number[] }>;
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * Per flavour: medians of the wall times, means of the CPU time of `podman start` (ticks are
 * coarse: 10 ms), and "network" = the same minus `--network none`. CPU counts podman and what it
 * waited for (plugins, netavark) plus a resident daemon's own time; conmon (daemonised) is not
 * counted, for anyone.
 */
function rowsOf(times: Times): Array<Record<string, number | string | undefined>> {
  const none = times.get(NONE);
  return [...times].map(([label, x]) => {
    const net = (v: number, base: number | undefined): number | undefined =>
      none && label !== NONE && base !== undefined ? v - base : undefined;
    const f = {
      start: median(x.start),
      stop: median(x.stop),
      startCpu: mean(x.startCpu),
    };
    return {
      label,
      ...f,
      netStart: net(f.start, none && median(none.start)),
      netStop: net(f.stop, none && median(none.stop)),
      netStartCpu: net(f.startCpu, none && mean(none.startCpu)),
    };
  });
}

function printTables(times: Times, rounds: number): void {
  const rows = rowsOf(times);
  const nav = rows.find((r) => r.label === "netavark 1.4");
  const cell = (row: Record<string, unknown>, k: string): string => {
    const v = row[k];
    const b = nav?.[k];
    if (typeof v !== "number") return "";
    return `${v.toFixed(1)}${typeof b === "number" && b ? ` (${(v / b).toFixed(2)}x)` : ""}`;
  };
  const table = (cols: Array<[string, string]>): void => {
    console.log(`\n${"".padEnd(38)}${cols.map(([h]) => h.padEnd(22)).join("")}`);
    for (const row of rows)
      console.log(row.label!.toString().padEnd(38) + cols.map(([, k]) => cell(row, k).padEnd(22)).join(""));
  };
  table([
    ["podman start ms", "start"],
    ["podman stop ms", "stop"],
    ["network setup ms", "netStart"],
    ["network teardown ms", "netStop"],
  ]);
  console.log(
    `medians of ${rounds}; ratios against netavark 1.4 (below 1.00x: faster); network = with - --network none`,
  );
  // Only podman start: the teardown may run in conmon's `podman container cleanup` instead of in
  // `podman stop` (whichever comes first), a process that is not this script's child.
  table([
    ["start CPU ms", "startCpu"],
    ["setup CPU ms", "netStartCpu"],
  ]);
  console.log(`CPU: means of ${rounds}, podman and what it waited for, plus a resident daemon's own`);
}

async function main(): Promise<void> {
  const usage = `usage: node --import tsx bench/podman.ts [--rounds 10] [--shared-run]
  --rounds N             interleaved rounds of every backend (default 10)
${SHARED_RUN_USAGE}`;
  const { values } = benchArgs({
    usage,
    options: { rounds: { type: "string", default: "10" }, ...SHARED_RUN_OPTION },
  });
  const rounds = intArg(usage, "--rounds", values.rounds, 10, 1);
  const missing = ["podman", "runc", "busybox", "python3"].filter((t) => !onPath(t));
  if (!existsSync(NETAVARK)) missing.push(NETAVARK);
  if (!existsSync(join(OURS, "cni-nft-plugins"))) missing.push(`${OURS} (npm run build)`);
  if (process.getuid?.() !== 0 || missing.length) {
    console.log(`bench/podman.ts skipped: needs root and ${missing.join(", ") || "root"}`);
    return;
  }
  // The plugins podman runs take their lock files in /run: the run's own, unless --shared-run.
  const run = await privateRun(values["shared-run"]);
  const t = mkdtempSync(join(tmpdir(), "cni-nft-podman-bench-"));
  // The script mounts a temporary directory over /var/lib/cni; the mount point itself is made
  // only when missing, and removed again.
  const hadVarLibCni = existsSync("/var/lib/cni");
  const host = `cnbpod${process.pid}`;
  let cleaned = false;
  // What the script leaves (conmon, a daemon of an aborted run) dies with the namespace.
  const cleanUp = (): void => {
    if (cleaned) return;
    cleaned = true;
    removeNamespaces(host, [host]);
    if (!hadVarLibCni) spawnSync("rmdir", ["/var/lib/cni"]);
    rmSync(t, { recursive: true, force: true });
  };
  try {
    const rootfs = join(t, "rootfs");
    spawnSync("mkdir", ["-p", join(rootfs, "bin"), join(rootfs, "www"), join(rootfs, "tmp")]);
    const busybox = spawnSync("sh", ["-c", "command -v busybox"], { encoding: "utf8" }).stdout.trim();
    spawnSync("cp", [busybox, join(rootfs, "bin/busybox")]);
    for (const a of ["sh", "httpd"]) spawnSync("ln", ["-s", "busybox", join(rootfs, "bin", a)]);
    writeFileSync(join(rootfs, "www/index.html"), "bench page\n");
    spawnSync("tar", ["-C", rootfs, "-cf", join(t, "rootfs.tar"), "."]);
    writeFileSync(join(t, "run.sh"), script(t, rounds));
    spawnSync("ip", ["netns", "add", host]);
    console.log(
      `podman 4.3: ${rounds} rounds, backends interleaved; podman runs in namespace ${host}\n${run}`,
    );
    process.once("exit", () => cleanUp());
    const r = await runScript(host, join(t, "run.sh"));
    if (r.code !== 0) console.log(`the run failed (${r.code}): ${r.err.slice(-2000)}`);
    const times: Times = new Map();
    for (const line of r.out.split("\n")) {
      if (line.startsWith("SERVED") || line.startsWith("NOT-SERVED")) console.log(`  ${line}`);
      const m = /^RESULT (.+)\|(\d+)\|(\d+)\|(-?\d+)$/.exec(line);
      if (!m) continue;
      const x = times.get(m[1]!) ?? { start: [], stop: [], startCpu: [] };
      x.start.push(Number(m[2]) / 1000);
      x.stop.push(Number(m[3]) / 1000);
      x.startCpu.push(Number(m[4]));
      times.set(m[1]!, x);
    }
    printTables(times, rounds);
    const served = checkResident(r.out, rounds);
    for (const line of served) console.log(line);
    console.log(
      `load average at the end: ${loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")}`,
    );
    saveResults("podman", { rounds, resident: served, loadAverage: loadavg()[0] }, rowsOf(times));
  } finally {
    cleanUp();
  }
}

await main();
