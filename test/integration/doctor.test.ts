/**
 * `cni-nft doctor` on purposely broken hosts: a forward chain with policy drop in an operator
 * table, iptables FORWARD DROP, ip_forward off, a leftover no cached attachment owns, a config
 * naming a backend the host cannot run (nft hidden from PATH). A clean host: nothing found.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { NetnsPool, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { OUR_BIN, ensureBuilt, tempDir } from "../helpers/cni.js";
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
