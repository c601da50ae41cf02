/**
 * A Kubernetes-shaped node: containerd 1.6's CRI plugin driven the way a kubelet drives it
 * (RunPodSandbox with a hostPort mapping and the bandwidth annotations, PodSandboxStatus,
 * StopPodSandbox, RemovePodSandbox) over its gRPC socket, on the conflist of
 * deploy/kubernetes/cni-nft.yaml installed by `cni-nft install` with the node's pod CIDR, on both
 * backends. Then three nodes on one underlay, each with its own pod CIDR and routes to the
 * others' (what a cloud route controller or BGP provides), pods reaching pods on other nodes.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { ensureBuilt, OUR_BIN, ROOT, tempDir } from "../helpers/cni.js";
import { NetnsPool, link, run, type Netns } from "../helpers/netns.js";
import { Containerd, haveContainerd } from "../helpers/containerd.js";
import { startBackground, type Background } from "../helpers/background.js";

const COMPILED = existsSync(join(OUR_BIN, "cni-nft-plugins")) ? OUR_BIN : join(ROOT, "dist", "compiled");
const skip = !haveContainerd()
  ? "containerd, ctr, runc or busybox missing (scripts/setup.sh installs them)"
  : !existsSync(join(COMPILED, "cni-nft-plugins")) && "needs the compiled plugins (npm run build with bun)";
const nets = new NetnsPool();
const tmp = tempDir("kube");
const procs: Background[] = [];
let containerd: Containerd;
/** The API server's part the installer uses: GET /api/v1/nodes/node-1 with a bearer token. */
let kubeApi = "";
let api: Server | undefined;
let node: Netns;
let client: Netns;
const PAGE = "hello from the pod\n";
/** libcni's cache (containerd's go-cni writes it under /var/lib/cni); removed again if we made it. */
const CNI_STATE_DIRS = ["/var/lib/cni/results", "/var/lib/cni"].filter((d) => !existsSync(d));
/** Where containerd 1.6's shims put their sockets whatever the config says; removed if we made it. */
const SHIM_DIRS = ["/run/containerd/s", "/run/containerd"].filter((d) => !existsSync(d));

/** The ConfigMap's conflist, with host-local's store in the test's dir and the given backends. */
function podConflist(dataDir: string, backend: "nftables" | "iptables"): Record<string, unknown> {
  const docs = parseAllDocuments(
    readFileSync(join(ROOT, "deploy", "kubernetes", "cni-nft.yaml"), "utf8"),
  ).map((d) => d.toJS() as { kind: string; data?: Record<string, string> });
  const conf = JSON.parse(docs.find((d) => d.kind === "ConfigMap")!.data!["10-cni-nft.conflist"]!) as {
    plugins: Record<string, unknown>[];
  };
  const [bridge, portmap] = conf.plugins;
  (bridge!["ipam"] as Record<string, unknown>)["dataDir"] = dataDir;
  bridge!["ipMasqBackend"] = backend;
  portmap!["backend"] = backend;
  return conf;
}

async function install(
  binDir: string,
  confDir: string,
  conflist: object,
  podCidr: string | { node: string },
  ns?: Netns,
): Promise<void> {
  const file = join(tmp.path, `10-cni-nft.conflist`);
  writeFileSync(file, JSON.stringify(conflist));
  const argv = [
    join(COMPILED, "cni-nft"),
    "install",
    "--source",
    COMPILED,
    "--bin-dir",
    binDir,
    "--conf-dir",
    confDir,
    "--conflist",
    file,
    ...(typeof podCidr === "string"
      ? ["--pod-cidr", podCidr]
      : [
          "--pod-cidr-from-node",
          podCidr.node,
          "--kube-api",
          kubeApi,
          "--kube-token-file",
          join(tmp.path, "token"),
        ]),
  ];
  const r = ns ? await ns.run(argv) : await run(argv);
  assert.equal(r.code, 0, r.stderr);
}

/** GET through busybox wget; retried while the server may still be starting (connection refused). */
async function wget(ns: Netns | string, url: string): Promise<string> {
  // No -T: Debian's static busybox 1.35 wget crashes (SIGSEGV) with it; the runner's timeout bounds it.
  const argv = ["busybox", "wget", "-q", "-O", "-", url];
  let last = "";
  for (let attempt = 0; attempt < 50; attempt++) {
    const opts = { timeoutMs: 10_000 };
    const r =
      typeof ns === "string"
        ? await run(["nsenter", `--net=${ns}`, ...argv], opts)
        : await ns.run(argv, opts);
    if (r.code === 0) return r.stdout;
    last = `wget ${url} failed (${r.code}): ${r.stderr}`;
    await new Promise((res) => setTimeout(res, 200));
  }
  return last;
}

async function hostState(): Promise<string> {
  const parts = await Promise.all([
    node.run(["nft", "list", "ruleset"]),
    node.run(["iptables-save"]),
    node.run(["ip", "-br", "link"]),
    node.run(["tc", "qdisc", "show"]),
  ]);
  return parts.map((p) => p.stdout).join("\n");
}

before(async () => {
  if (skip) return;
  await ensureBuilt();
  node = await nets.create("knode");
  client = await nets.create("kclient");
  await link(node, "eth1", client, "eth1");
  await node.sh(["ip", "addr", "add", "192.168.222.1/24", "dev", "eth1"]);
  await client.sh(["ip", "addr", "add", "192.168.222.2/24", "dev", "eth1"]);
  writeFileSync(join(tmp.path, "token"), "sa-token\n");
  api = createServer((req, res) => {
    if (req.headers.authorization !== "Bearer sa-token" || req.url !== "/api/v1/nodes/node-1")
      return void res.writeHead(404).end("{}");
    const spec = { podCIDR: "10.244.7.0/24", podCIDRs: ["10.244.7.0/24", "fd00:10:244:7::/64"] };
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ kind: "Node", spec }));
  });
  await new Promise<void>((r) => api!.listen(0, "127.0.0.1", r));
  kubeApi = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
  containerd = new Containerd(node, join(tmp.path, "containerd"));
  await containerd.start();
  await containerd.importSandboxImage();
  mkdirSync(join(tmp.path, "www"));
  writeFileSync(join(tmp.path, "www", "index.html"), "hello from outside\n");
  procs.push(
    startBackground(
      client.argv(["busybox", "httpd", "-f", "-p", "8080", "-h", join(tmp.path, "www")]),
      join(tmp.path, "httpd.log"),
    ),
  );
});
after(async () => {
  api?.close();
  await containerd?.destroy();
  await Promise.all(procs.map((p) => p.stop()));
  await nets.destroyAll();
  for (const d of [...CNI_STATE_DIRS, ...SHIM_DIRS]) await run(["rmdir", d]); // only when empty: others may use it by now
  tmp.remove();
});

for (const [i, backend] of (["nftables", "iptables"] as const).entries()) {
  test(
    `CRI (${backend}): RunPodSandbox with a hostPort and bandwidth annotations; Stop and Remove leave nothing`,
    { skip },
    async () => {
      const dataDir = join(tmp.path, `ipam-${backend}`);
      // As the DaemonSet's init container does: the pod CIDRs from the Node object.
      await install(containerd.binDir, containerd.confDir, podConflist(dataDir, backend), { node: "node-1" });
      // containerd reads the CNI config when it changes; a restart makes the switch certain.
      await containerd.stop();
      await containerd.start();
      const hostPort = 30080 + i;
      const id = await containerd.cri.runPodSandbox({
        name: `web-${backend}`,
        uid: `uid-${process.pid}-${backend}`,
        namespace: "default",
        portMappings: [{ protocol: "TCP", containerPort: 80, hostPort }],
        annotations: { "kubernetes.io/ingress-bandwidth": "1M", "kubernetes.io/egress-bandwidth": "2M" },
      });
      const status = await containerd.cri.podSandboxStatus(id);
      assert.equal(status.state, "SANDBOX_READY");
      assert.match(status.ip, /^10\.244\.7\.\d+$/);
      assert.equal(status.additionalIps.length, 1, "dual-stack: the node's IPv6 pod CIDR too");
      assert.match(status.additionalIps[0]!, /^fd00:10:244:7::[0-9a-f]+$/);
      const spec = JSON.parse(status.info["info"]!) as {
        runtimeSpec: { linux: { namespaces: { type: string; path?: string }[] } };
      };
      const podNetns = spec.runtimeSpec.linux.namespaces.find((n) => n.type === "network")!.path!;
      assert.ok(existsSync(podNetns), podNetns);

      // Pod networking: the node reaches the pod, the pod reaches outside (masqueraded).
      assert.equal(await wget(node, `http://${status.ip}/`), PAGE);
      assert.equal(await wget(podNetns, "http://192.168.222.2:8080/"), "hello from outside\n");
      // The hostPort, from another namespace, to the node's address.
      assert.equal(await wget(client, `http://192.168.222.1:${hostPort}/`), PAGE);
      // Bandwidth: containerd turned the annotations into the bandwidth capability.
      const qdiscs = JSON.parse((await node.sh(["tc", "-j", "qdisc", "show"])) || "[]") as {
        kind: string;
        dev: string;
        options?: { rate?: number };
      }[];
      const tbf = qdiscs.filter((q) => q.kind === "tbf");
      assert.deepEqual(
        tbf.map((q) => [q.dev.startsWith("bwp") ? "ifb" : "veth", q.options?.rate]).sort(),
        [
          ["ifb", 250_000],
          ["veth", 125_000],
        ],
        "egress 2 Mbit/s on the ifb, ingress 1 Mbit/s on the host veth (bytes/s)",
      );
      const during = await hostState();
      assert.ok(during.includes(status.ip));

      await containerd.cri.stopPodSandbox(id);
      await containerd.cri.stopPodSandbox(id); // kubelet stops more than once
      await containerd.cri.removePodSandbox(id);
      assert.ok(!(await containerd.cri.listPodSandboxIds()).includes(id));
      assert.ok(!existsSync(podNetns), "the pod's namespace is gone");
      const left = await hostState();
      for (const ip of [status.ip, ...status.additionalIps])
        assert.ok(!left.includes(ip), `nothing names the pod's address ${ip}:\n${left}`);
      assert.ok(!left.includes(String(hostPort)), "nothing names the host port");
      assert.doesNotMatch(left, /veth|bwp/, "no veth, no ifb left");
      assert.deepEqual(
        readdirSync(join(dataDir, "k8s-pod-network")).filter((f) => /^\d/.test(f)),
        [],
        "no reservation",
      );
      assert.ok(
        !existsSync(`/var/lib/cni/results/k8s-pod-network-${id}-eth0`),
        "libcni's cache entry removed",
      );
    },
  );
}

test(
  "three nodes on one underlay, a pod CIDR each, routes to the others: pods reach pods on every node",
  { skip },
  async () => {
    const underlay = await nets.create("kunder");
    await underlay.sh(["ip", "link", "add", "br0", "type", "bridge"]);
    await underlay.sh(["ip", "link", "set", "br0", "up"]);
    const nodes: { ns: Netns; dir: string; pod: Netns; ip?: string }[] = [];
    for (const n of [1, 2, 3]) {
      const ns = await nets.create(`kn${n}`);
      await link(ns, "eth0", underlay, `u${n}`);
      await underlay.sh(["ip", "link", "set", `u${n}`, "master", "br0"]);
      await ns.sh(["ip", "addr", "add", `192.168.224.${n}/24`, "dev", "eth0"]);
      const dir = join(tmp.path, `node${n}`);
      const conf = podConflist(join(dir, "ipam"), "nftables");
      await install(join(dir, "bin"), join(dir, "net.d"), conf, `10.246.${n}.0/24`, ns);
      for (const m of [1, 2, 3])
        if (m !== n) await ns.sh(["ip", "route", "add", `10.246.${m}.0/24`, "via", `192.168.224.${m}`]);
      nodes.push({ ns, dir, pod: await nets.create(`kp${n}`) });
    }
    const cli = async (n: (typeof nodes)[number], verb: "add" | "del") => {
      const r = await n.ns.run(
        [join(n.dir, "bin", "cni-nft"), verb, "k8s-pod-network", n.pod.path, "--json"],
        {
          env: {
            PATH: process.env["PATH"],
            NETCONFPATH: join(n.dir, "net.d"),
            CNI_PATH: join(n.dir, "bin"),
            CNI_CACHE_DIR: join(n.dir, "cache"),
            CNI_CONTAINERID: `pod-${n.pod.name}`,
          },
        },
      );
      assert.equal(r.code, 0, r.stdout + r.stderr);
      return r.stdout;
    };
    for (const [k, n] of nodes.entries()) {
      const result = JSON.parse(await cli(n, "add")) as { ips: { address: string }[] };
      n.ip = result.ips[0]!.address.split("/")[0]!;
      assert.match(n.ip, new RegExp(`^10\\.246\\.${k + 1}\\.\\d+$`));
      const www = join(n.dir, "www");
      mkdirSync(www, { recursive: true });
      writeFileSync(join(www, "index.html"), `pod on node ${k + 1}\n`);
      procs.push(
        startBackground(
          n.pod.argv(["busybox", "httpd", "-f", "-p", "80", "-h", www]),
          join(n.dir, "httpd.log"),
        ),
      );
    }
    for (const [a, from] of nodes.entries())
      for (const [b, to] of nodes.entries())
        if (a !== b)
          assert.equal(
            await wget(from.pod, `http://${to.ip}/`),
            `pod on node ${b + 1}\n`,
            `pod ${a + 1} → pod ${b + 1}`,
          );
    for (const n of nodes) {
      await cli(n, "del");
      assert.doesNotMatch(await n.ns.sh(["ip", "-br", "link"]), /veth/);
    }
  },
);
