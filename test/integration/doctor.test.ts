/**
 * `cni-nft doctor` on purposely broken hosts: a forward chain with policy drop in an operator
 * table, iptables FORWARD DROP, ip_forward off, a leftover no cached attachment owns, a config
 * naming a backend the host cannot run (nft hidden from PATH), hostForward's accepts (written by
 * the firewall plugin) left in the host's chains once no config asks for them, removed by the
 * printed fix. A clean host: nothing found.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { OUR_BIN, cni, ensureBuilt, tempDir } from "../helpers/cni.js";
import { upstreamNftPortmap } from "../helpers/upstream-layouts.js";

const CLI = join(OUR_BIN, "cni-nft");
const nets = new NetnsPool();
const tmp = tempDir("doctor");
let host: Netns;

before(async () => {
  await sweepStaleNamespaces();
  await ensureBuilt();
  host = await nets.create("dr");
});
after(async () => {
  await nets.destroyAll();
  tmp.remove();
});

interface Report {
  findings: Array<{ kind: string; message: string; fix: string }>;
  ok: boolean;
}

async function doctor(path = process.env["PATH"]!): Promise<{ code: number; report: Report }> {
  const r = await host.run([CLI, "doctor", "--json"], {
    env: { PATH: path, CNI_CACHE_DIR: join(tmp.path, "cache"), NETCONFPATH: join(tmp.path, "net.d") },
  });
  return { code: r.code, report: JSON.parse(r.stdout) as Report };
}

test("a clean host: nothing found, exit 0", async () => {
  await host.sh(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
  const { code, report } = await doctor();
  assert.deepEqual(report.findings, []);
  assert.equal(code, 0);
});

test("a broken host: every finding named, with what to do", async () => {
  await host.sh(
    ["nft", "-f", "-"],
    "table inet opsfw {\n chain fwdpol {\n  type filter hook forward priority 0; policy drop;\n }\n}\n",
  );
  await host.sh(["iptables", "-P", "FORWARD", "DROP"]);
  await host.sh(["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
  await host.sh(
    ["nft", "-f", "-"],
    upstreamNftPortmap("ghost1", [{ hostPort: 7777, containerPort: 80, protocol: "tcp" }], ["10.99.0.9"]),
  );
  const { code, report } = await doctor();
  assert.equal(code, 1);
  const byKind = (k: string) => report.findings.filter((f) => f.kind === k);
  assert.match(
    byKind("forward-policy-drop")
      .map((f) => f.message)
      .join("\n"),
    /inet opsfw fwdpol/,
  );
  assert.match(
    byKind("forward-policy-drop")
      .map((f) => f.fix)
      .join("\n"),
    /nft insert rule inet opsfw fwdpol meta mark and 0x00001000 == 0x00001000 accept/,
  );
  assert.match(
    byKind("forward-policy-drop")
      .map((f) => f.fix)
      .join("\n"),
    /"hostForward": \{"nftables": \{"family": "inet", "table": "opsfw", "chain": "fwdpol"\}\}[^]*"hostForward": \{"iptables": true\}/,
  );
  assert.match(
    byKind("forward-policy-drop")
      .map((f) => f.message)
      .join("\n"),
    /iptables FORWARD policy is DROP/,
  );
  assert.equal(byKind("ip-forward-off").length, 1);
  assert.match(
    byKind("leftover")
      .map((f) => f.message)
      .join("\n"),
    /cni_hostport: rule of container ghost1/,
  );
  for (const f of report.findings) assert.ok(f.fix.length > 10, JSON.stringify(f));
  // With hostForward's accepts in place (what its fix says to set), the policies are handled.
  await host.sh([
    "nft",
    "insert",
    "rule",
    "inet",
    "opsfw",
    "fwdpol",
    "meta",
    "mark",
    "and",
    "0x1000",
    "==",
    "0x1000",
    "accept",
  ]);
  await host.sh(["iptables", "-N", "CNI-FORWARD"]);
  await host.sh(["iptables", "-A", "CNI-FORWARD", "-m", "mark", "--mark", "0x1000/0x1000", "-j", "ACCEPT"]);
  assert.deepEqual(
    (await doctor()).report.findings.filter((f) => f.kind === "forward-policy-drop"),
    [],
  );
  await host.sh(["iptables", "-F", "CNI-FORWARD"]);
  await host.sh(["iptables", "-X", "CNI-FORWARD"]);
  await host.sh(["nft", "delete", "table", "inet", "opsfw"]);
  await host.sh(["nft", "delete", "table", "ip", "cni_hostport"]);
  await host.sh(["iptables", "-P", "FORWARD", "ACCEPT"]);
  await host.sh(["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
});

test("a config naming a backend this host cannot run (nft hidden)", async () => {
  const conf = join(tmp.path, "net.d");
  mkdirSync(conf, { recursive: true });
  writeFileSync(
    join(conf, "10-x.conflist"),
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "drnet",
      plugins: [{ type: "portmap", backend: "nftables" }],
    }),
  );
  const bin = join(tmp.path, "bin");
  mkdirSync(bin);
  for (const d of [dirname(process.execPath), "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
    if (existsSync(d))
      for (const n of readdirSync(d))
        if (n !== "nft" && !existsSync(join(bin, n))) symlinkSync(join(d, n), join(bin, n));
  const { report } = await doctor(bin);
  assert.match(
    report.findings
      .filter((f) => f.kind === "backend-unavailable")
      .map((f) => f.message)
      .join("\n"),
    /network drnet .* names backend nftables, which this host cannot run/,
  );
});

test("hostForward's accepts left in the host's chains when no config asks for them any more", async () => {
  await host.sh(
    ["nft", "-f", "-"],
    "table inet hostfw {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n }\n}\n",
  );
  const ctr = await nets.create("drc");
  const hostForward = { nftables: { family: "inet", table: "hostfw", chain: "forward" }, iptables: true };
  const firewall = (name: string, backend: string, address: string, hf?: object): object => ({
    cniVersion: "1.0.0",
    name,
    type: "firewall",
    backend,
    ...(hf ? { hostForward: hf } : {}),
    prevResult: {
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", sandbox: ctr.path }],
      ips: [{ address, interface: 0 }],
    },
  });
  const conflist = (name: string, backend: string, hf?: object): string =>
    JSON.stringify({
      cniVersion: "1.0.0",
      name,
      plugins: [{ type: "firewall", backend, ...(hf ? { hostForward: hf } : {}) }],
    });
  // The plugin writes them: the nftables backend's network accepts (host chain and CNI-FORWARD),
  // the iptables backend's container accepts in the host chain.
  for (const [name, backend, address, hf] of [
    ["drhf", "nftables", "10.98.0.5/24", hostForward],
    ["drhi", "iptables", "10.97.0.5/24", { nftables: hostForward.nftables }],
  ] as const) {
    const r = await cni(host, "firewall", "ADD", firewall(name, backend, address, hf), {
      containerId: `${name}-c1`,
      netns: ctr.path,
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }
  const conf = join(tmp.path, "net.d");
  mkdirSync(conf, { recursive: true });
  const hostForwardFindings = async (): Promise<Array<{ message: string; fix: string }>> =>
    (await doctor()).report.findings.filter((f) => f.kind === "host-forward-leftover");

  writeFileSync(join(conf, "20-hf.conflist"), conflist("drhf", "nftables", hostForward));
  writeFileSync(
    join(conf, "21-hi.conflist"),
    conflist("drhi", "iptables", { nftables: hostForward.nftables }),
  );
  assert.deepEqual(await hostForwardFindings(), [], "both configs still ask for them");

  // drhf's config without hostForward; drhi's config gone.
  writeFileSync(join(conf, "20-hf.conflist"), conflist("drhf", "nftables"));
  rmSync(join(conf, "21-hi.conflist"));
  const found = await hostForwardFindings();
  const text = found.map((f) => `${f.message}\n${f.fix}`).join("\n");
  assert.equal(found.length, 5, text); // drhf: host chain, iptables, ip6tables; drhi: its two accepts
  assert.match(
    text,
    /chain inet hostfw forward holds hostForward's accept ".*hostForward mark 0x00001000, net: drhf", but network drhf's config no longer asks for it\nnft delete rule inet hostfw forward handle \d+/,
  );
  assert.match(
    text,
    /iptables rule -A CNI-FORWARD -m mark --mark 0x1000\/0x1000 .*net: drhf.* is hostForward's accept, but network drhf's config no longer asks for it\niptables -t filter -D CNI-FORWARD /,
  );
  assert.match(
    text,
    /holds hostForward's accept ".*net: drhi, if: eth0, id: drhi-c1", but no network config here names its network/,
  );
  // Each fix as printed removes its rule; then nothing is left to flag.
  for (const f of found) await host.sh(["sh", "-c", f.fix.replace(/ \(or put .*\)$/, "")]);
  assert.deepEqual(await hostForwardFindings(), []);
  assert.doesNotMatch(await host.sh(["nft", "list", "chain", "inet", "hostfw", "forward"]), /comment/);
  assert.doesNotMatch(await host.sh(["iptables-save", "-t", "filter"]), /hostForward/);
  await host.sh(["nft", "delete", "table", "inet", "hostfw"]);
  rmSync(join(conf, "20-hf.conflist"));
});
