/**
 * A containerd 1.6 of the test's own, as a kubelet's node has one: its root, state, sockets and
 * CNI dirs in a temp dir, running inside a throwaway "node" namespace (entered with nsenter, not
 * `ip netns exec`, whose private /sys would hide the cgroup mounts runc needs), with the CRI plugin
 * configured for a sandbox image imported from a tarball (no registry).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startBackground, waitFor, type Background } from "./background.js";
import { CriClient } from "./cri.js";
import { run, sh, type Netns } from "./netns.js";
import { busyboxImage } from "./oci-image.js";

export const SANDBOX_IMAGE = "docker.io/cni-nft/pause:test";

export function haveContainerd(): boolean {
  return ["/usr/bin/containerd", "/usr/bin/ctr", "/usr/sbin/runc", "/bin/busybox"].every((f) =>
    existsSync(f),
  );
}

export class Containerd {
  readonly socket: string;
  readonly binDir: string;
  readonly confDir: string;
  private proc: Background | undefined;
  cri!: CriClient;

  constructor(
    readonly node: Netns,
    readonly dir: string,
  ) {
    this.socket = join(dir, "containerd.sock");
    this.binDir = join(dir, "cni", "bin");
    this.confDir = join(dir, "cni", "net.d");
    for (const d of [this.binDir, this.confDir]) mkdirSync(d, { recursive: true });
    writeFileSync(
      join(dir, "config.toml"),
      `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "${this.socket}"
[ttrpc]
  address = "${this.socket}.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${SANDBOX_IMAGE}"
  stream_server_address = "127.0.0.1"
  # Lowering oom_score_adj (the sandbox's -998) is refused in this machine's container.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "${dir}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${this.binDir}"
    conf_dir = "${this.confDir}"
    max_conf_num = 1
`,
    );
  }

  log(): string {
    return this.proc?.output() ?? "";
  }

  async start(): Promise<void> {
    this.proc = startBackground(
      ["nsenter", `--net=${this.node.path}`, "containerd", "--config", join(this.dir, "config.toml")],
      join(this.dir, "containerd.log"),
    );
    await waitFor("containerd's socket", () => (existsSync(this.socket) ? true : undefined));
    this.cri = new CriClient(this.socket);
    await waitFor(
      "the CRI plugin",
      async () => (await this.cri.version().catch(() => undefined)) ?? undefined,
    );
  }

  async stop(): Promise<void> {
    this.cri?.close();
    await this.proc?.stop(15_000);
  }

  async importSandboxImage(): Promise<void> {
    const tarball = join(this.dir, "pause.tar");
    busyboxImage(tarball, SANDBOX_IMAGE);
    await sh([
      "ctr",
      "--address",
      this.socket,
      "-n",
      "k8s.io",
      "images",
      "import",
      "--snapshotter",
      "native",
      tarball,
    ]);
  }

  /** Removes every sandbox left (a failed test), stops containerd, unmounts what it left under its dir. */
  async destroy(): Promise<void> {
    if (this.proc && this.cri) {
      for (const id of await this.cri.listPodSandboxIds().catch(() => [])) {
        await this.cri.stopPodSandbox(id).catch(() => undefined);
        await this.cri.removePodSandbox(id).catch(() => undefined);
      }
    }
    await this.stop();
    const mounts = readFileSync("/proc/mounts", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[1] ?? "")
      .filter((m) => m.startsWith(this.dir))
      .reverse();
    for (const m of mounts) await run(["umount", "-l", m]);
  }
}
