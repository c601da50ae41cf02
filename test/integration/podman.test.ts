/**
 * Podman 4.3 (Debian's, unmodified, CNI backend) running a real container whose networking is done
 * by cni-nft's plugins: bridge → portmap → firewall → tuning, as podman writes the conflist. A
 * request through the published host port returns the container's page; `podman network reload`
 * keeps it working; stop and rm leave no rule, element or IP reservation behind. Once with the
 * conflist as podman writes it (iptables), once switched to the nftables backends.
 *
 * This test works in the root network namespace (podman does), so everything it creates has a
 * unique name and is removed in `after`, even when a step fails: containers, networks, the image,
 * podman's storage (in a temporary directory), bridges, firewall chains and tables that were not
 * there before, IPAM state, and ip_forward. scripts/setup.sh installs podman where it installs
 * firewalld (no systemd, a policy-rc.d); elsewhere the test is skipped unless podman, runc and
 * busybox are installed. scripts/podman-test.sh installs them and runs this test alone.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  copyFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:http";
import { run, sh } from "../helpers/netns.js";
import { OUR_BIN, ensureBuilt } from "../helpers/cni.js";

const TAG = `cninft${process.pid}`;
const T = mkdtempSync(join(tmpdir(), "cni-nft-podman-"));
const env = {
  ...process.env,
  CONTAINERS_CONF: join(T, "containers.conf"),
  CONTAINERS_STORAGE_CONF: join(T, "storage.conf"),
};
const IMAGE = `localhost/${TAG}-busybox:latest`;
/** The container: busybox httpd serving PAGE on port 80. */
const HTTPD = [IMAGE, "httpd", "-f", "-p", "80", "-h", "/www"];
const PAGE = `hello from cni-nft ${TAG}\n`;

const podman = async (...args: string[]): Promise<string> => {
  const r = await run(["podman", ...args], { env, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`podman ${args.join(" ")} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
};

function get(port: number, host = "127.0.0.1"): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: "/index.html", agent: false, timeout: 3000 }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve(body));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(undefined));
    req.end();
  });
}

async function getWithRetry(port: number, host?: string): Promise<string | undefined> {
  for (let i = 0; i < 20; i++) {
    const body = await get(port, host);
    if (body !== undefined) return body;
    await new Promise((r) => setTimeout(r, 250));
  }
  return undefined;
}

/** What the root namespace has before the test: chains per iptables table, nft tables, links. */
interface HostState {
  chains: Map<string, Set<string>>;
  nftTables: Set<string>;
  links: Set<string>;
  ipForward: string;
  dirs: Set<string>;
}

async function hostState(): Promise<HostState> {
  const chains = new Map<string, Set<string>>();
  for (const tool of ["iptables", "ip6tables"])
    for (const table of ["filter", "nat", "mangle"]) {
      const r = await run([`${tool}-save`, "-t", table]);
      chains.set(
        `${tool} ${table}`,
        new Set(
          r.stdout
            .split("\n")
            .filter((l) => l.startsWith(":"))
            .map((l) => l.slice(1).split(" ")[0]!),
        ),
      );
    }
  const tables = (await run(["nft", "list", "tables"])).stdout.split("\n").filter(Boolean);
  const links = (
    JSON.parse((await run(["ip", "-j", "link", "show"])).stdout) as Array<{ ifname: string }>
  ).map((l) => l.ifname);
  return {
    chains,
    nftTables: new Set(tables),
    links: new Set(links),
    ipForward: readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim(),
    dirs: new Set(
      ["/var/lib/cni/networks", "/var/lib/cni/results", "/var/lib/cni"].filter((d) => existsSync(d)),
    ),
  };
}

/** Removes iptables chains, nft tables and links that appeared since `before`. */
async function restoreHost(before: HostState): Promise<void> {
  for (const [key, had] of before.chains) {
    const [tool, table] = key.split(" ") as [string, string];
    const saved = (await run([`${tool}-save`, "-t", table])).stdout.split("\n");
    const added = saved
      .filter((l) => l.startsWith(":"))
      .map((l) => l.slice(1).split(" ")[0]!)
      .filter((c) => !had.has(c));
    if (added.length === 0) continue;
    const jumps = saved.filter(
      (l) => l.startsWith("-A ") && added.some((c) => l.endsWith(` -j ${c}`) || l.includes(` -j ${c} `)),
    );
    const lines = [
      `*${table}`,
      ...jumps.filter((l) => !added.includes(l.split(" ")[1]!)).map((l) => "-D" + l.slice(2)),
      ...added.map((c) => `-F ${c}`),
      ...added.map((c) => `-X ${c}`),
      "COMMIT",
      "",
    ];
    await run([`${tool}-restore`, "-w", "--noflush"], { input: lines.join("\n") });
  }
  for (const t of (await run(["nft", "list", "tables"])).stdout.split("\n").filter(Boolean))
    if (!before.nftTables.has(t)) await run(["nft", "delete", ...t.split(" ")]);
  const links = JSON.parse((await run(["ip", "-j", "link", "show"])).stdout) as Array<{ ifname: string }>;
  for (const l of links)
    if (!before.links.has(l.ifname) && /^cni-podman\d+$/.test(l.ifname))
      await run(["ip", "link", "del", l.ifname]);
  writeFileSync("/proc/sys/net/ipv4/ip_forward", before.ipForward);
  // Directories libcni and host-local made, when they were not there before and are empty now.
  for (const d of ["/var/lib/cni/networks", "/var/lib/cni/results", "/var/lib/cni"])
    if (!before.dirs.has(d)) await run(["rmdir", d]);
}

/** Switches a conflist podman wrote (iptables) to the nftables backends. */
function switchToNftables(file: string): void {
  const conflist = JSON.parse(readFileSync(file, "utf8")) as { plugins: Array<Record<string, unknown>> };
  for (const p of conflist.plugins) {
    if (p["type"] === "bridge") p["ipMasqBackend"] = "nftables";
    if (p["type"] === "portmap" || p["type"] === "firewall") p["backend"] = "nftables";
  }
  writeFileSync(file, JSON.stringify(conflist, null, 2));
}

const skip = !["podman", "runc", "busybox"].every((t) =>
  (process.env["PATH"] ?? "").split(":").some((d) => existsSync(join(d, t))),
);

describe(
  "podman 4.3, unmodified, on cni-nft",
  { skip: skip && "podman, runc or busybox not installed" },
  () => {
    let initial: HostState;
    const networks: string[] = [];

    before(async () => {
      await ensureBuilt();
      initial = await hostState();
      writeFileSync(
        env.CONTAINERS_CONF,
        [
          "[containers]",
          'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]',
          "[network]",
          'network_backend = "cni"',
          `cni_plugin_dirs = ["${OUR_BIN}"]`,
          `network_config_dir = "${join(T, "net.d")}"`,
          "[engine]",
          'runtime = "runc"',
          'cgroup_manager = "cgroupfs"',
          'events_logger = "file"',
          `events_logfile_path = "${join(T, "events.log")}"`,
          `tmp_dir = "${join(T, "tmp")}"`,
          "",
        ].join("\n"),
      );
      writeFileSync(
        env.CONTAINERS_STORAGE_CONF,
        [
          "[storage]",
          'driver = "overlay"',
          `graphroot = "${join(T, "storage")}"`,
          `runroot = "${join(T, "run")}"`,
          "",
        ].join("\n"),
      );
      const rootfs = join(T, "rootfs");
      for (const d of ["bin", "www", "tmp"]) mkdirSync(join(rootfs, d), { recursive: true });
      copyFileSync((await sh(["sh", "-c", "command -v busybox"])).trim(), join(rootfs, "bin", "busybox"));
      for (const a of ["sh", "httpd"]) symlinkSync("busybox", join(rootfs, "bin", a));
      writeFileSync(join(rootfs, "www", "index.html"), PAGE);
      await sh(["tar", "-C", rootfs, "-cf", join(T, "rootfs.tar"), "."]);
      await podman("import", join(T, "rootfs.tar"), IMAGE);
    });

    after(async () => {
      await run(["podman", "rm", "-f", "-t", "0", "-a"], { env });
      for (const n of networks) await run(["podman", "network", "rm", "-f", n], { env });
      await run(["podman", "rmi", "-f", IMAGE], { env });
      await run(["podman", "system", "reset", "-f"], { env, timeoutMs: 120_000 });
      for (const n of networks) rmSync(join("/var/lib/cni/networks", n), { recursive: true, force: true });
      if (initial) await restoreHost(initial);
      await run(["umount", "-R", join(T, "storage", "overlay")]);
      rmSync(T, { recursive: true, force: true });
    });

    for (const [i, backend] of (["iptables", "nftables"] as const).entries()) {
      test(`${backend}: run with a published port, network reload, stop and rm leave nothing`, async () => {
        const net = `${TAG}-${backend.slice(0, 3)}`;
        const port = 18080 + i + (process.pid % 1000) * 2;
        const subnet = `10.89.${210 + i}.0/24`;
        networks.push(net);
        await podman("network", "create", "--subnet", subnet, net);
        const file = join(T, "net.d", `${net}.conflist`);
        const conflist = JSON.parse(readFileSync(file, "utf8")) as {
          plugins: Array<Record<string, unknown>>;
        };
        assert.deepEqual(
          conflist.plugins.map((p) => p["type"]),
          ["bridge", "portmap", "firewall", "tuning"],
        );
        if (backend === "nftables") switchToNftables(file);
        const name = `${TAG}-web-${backend.slice(0, 3)}`;
        const id = (
          await podman("run", "-d", "--name", name, "--network", net, "-p", `${port}:80`, ...HTTPD)
        ).trim();
        assert.equal(await getWithRetry(port), PAGE, "the page through the host port");

        const ip = (
          await podman("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
        ).trim();
        assert.match(ip, /^10\.89\.21\d\.\d+$/);
        const rules = async (): Promise<string> =>
          [(await run(["iptables-save"])).stdout, (await run(["nft", "list", "ruleset"])).stdout].join("\n");
        const during = await rules();
        if (backend === "nftables") {
          assert.match(
            during,
            new RegExp(`table inet cni_nft_firewall[\\s\\S]*${ip.replace(/\./g, "\\.")} comment`),
          );
          assert.doesNotMatch((await run(["iptables-save"])).stdout, new RegExp(ip.replace(/\./g, "\\.")));
        } else assert.match(during, new RegExp(`-A CNI-FORWARD -s ${ip.replace(/\./g, "\\.")}/32 -j ACCEPT`));

        await podman("network", "reload", name);
        assert.equal(await getWithRetry(port), PAGE, "still served after network reload");

        if (backend === "iptables") {
          // cni-nft migrate on podman's own cache (/var/lib/cni), container running: the page is
          // still served, the state is on nftables only; then restore after our tables are gone.
          const records = join(T, "records");
          const cli = (...args: string[]) =>
            sh(["env", `CNI_NFT_NETWORKS_DIR=${records}`, join(OUR_BIN, "cni-nft"), ...args]);
          await cli("migrate", "--to", "nftables", net);
          assert.equal(await getWithRetry(port), PAGE, "served after migrate");
          assert.doesNotMatch(
            (await run(["iptables-save"])).stdout,
            new RegExp(`${ip.replace(/\./g, "\\.")}/32`),
          );
          assert.match(
            (await run(["nft", "list", "table", "inet", "cni_nft_firewall"])).stdout,
            new RegExp(ip.replace(/\./g, "\\.")),
          );
          await run(["nft", "delete", "table", "inet", "cni_nft_portmap"]);
          assert.equal(await get(port), undefined, "no host port once its table is gone");
          await cli("restore", net);
          assert.equal(await getWithRetry(port), PAGE, "served after restore");
          await cli("migrate", "--to", "iptables", net);
          assert.equal(await getWithRetry(port), PAGE, "served after the way back");
        }

        await podman("stop", "-t", "0", name);
        await podman("rm", name);
        const left = await rules();
        assert.doesNotMatch(
          left,
          new RegExp(`\\b${ip.replace(/\./g, "\\.")}\\b`),
          "no rule or element for the address",
        );
        assert.doesNotMatch(left, new RegExp(id.slice(0, 12)), "no rule naming the container");
        assert.doesNotMatch(
          left,
          new RegExp(`dport ${port}|--dport ${port}|\\b${port} :`),
          "no port mapping",
        );
        assert.equal(existsSync(join("/var/lib/cni/networks", net, ip)), false, "IP reservation released");
        assert.equal(await get(port), undefined, "the port is closed");
      });
    }

    test("a container on two networks (--network a,b), then connect and disconnect a third", async () => {
      // One network per backend, each with podman's default route: the second used to collide.
      const nets = ["a", "b", "c"].map((x) => `${TAG}-m${x}`);
      for (const [i, net] of nets.entries()) {
        networks.push(net);
        await podman("network", "create", "--subnet", `10.89.${212 + i}.0/24`, net);
        if (i === 1) switchToNftables(join(T, "net.d", `${net}.conflist`));
      }
      const name = `${TAG}-multi`;
      await podman("run", "-d", "--name", name, "--network", `${nets[0]},${nets[1]}`, ...HTTPD);
      const ipsOf = async (): Promise<Map<string, string>> => {
        const json = await podman("inspect", "-f", "{{json .NetworkSettings.Networks}}", name);
        const byNet = JSON.parse(json) as Record<string, { IPAddress: string }>;
        return new Map(Object.entries(byNet).map(([n, v]) => [n, v.IPAddress]));
      };
      let ips = await ipsOf();
      assert.deepEqual([...ips.keys()].sort(), [nets[0], nets[1]].sort());
      for (const ip of ips.values()) assert.equal(await getWithRetry(80, ip), PAGE, `the page at ${ip}`);

      await podman("network", "connect", nets[2]!, name);
      ips = await ipsOf();
      assert.equal(ips.size, 3);
      assert.equal(await getWithRetry(80, ips.get(nets[2]!)), PAGE, "the page on the connected network");
      const third = ips.get(nets[2]!)!;
      await podman("network", "disconnect", nets[2]!, name);
      ips = await ipsOf();
      assert.deepEqual([...ips.keys()].sort(), [nets[0], nets[1]].sort());
      for (const ip of ips.values()) assert.equal(await getWithRetry(80, ip), PAGE, `still at ${ip}`);
      assert.equal(existsSync(join("/var/lib/cni/networks", nets[2]!, third)), false);

      await podman("stop", "-t", "0", name);
      await podman("rm", name);
      const left = [
        (await run(["iptables-save"])).stdout,
        (await run(["nft", "list", "ruleset"])).stdout,
      ].join("\n");
      for (const [net, ip] of ips) {
        assert.doesNotMatch(left, new RegExp(`\\b${ip.replace(/\./g, "\\.")}\\b`), `no rule for ${ip}`);
        assert.equal(existsSync(join("/var/lib/cni/networks", net, ip)), false, `${ip} released`);
      }
    });
  },
);
