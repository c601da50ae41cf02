/**
 * The systemd units in deploy/systemd pass `systemd-analyze verify` (with ExecStart pointed at
 * an executable that exists here). Skipped where systemd-analyze is not installed: it comes with
 * Debian's whole `systemd` package, too big for scripts/setup.sh to add for one check.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers/cni.js";
import { residentUnits } from "../../src/cli/resident-units.js";

const UNITS = join(ROOT, "deploy", "systemd");
const analyze = spawnSync("sh", ["-c", "command -v systemd-analyze"]).status === 0;

test(
  "deploy/systemd units pass systemd-analyze verify",
  { skip: analyze ? false : "systemd-analyze not installed" },
  () => {
    const dir = mkdtempSync(join(tmpdir(), "cni-nft-units-"));
    try {
      const units = readdirSync(UNITS).filter((f) => /\.(service|socket)$/.test(f));
      assert.deepEqual(units.sort(), [
        "cni-nft-firewalld-reload.service",
        "cni-nft-resident.service",
        "cni-nft-resident.socket",
        "cni-nft-restore.service",
      ]);
      for (const u of units) {
        const text = readFileSync(join(UNITS, u), "utf8");
        if (u.endsWith(".service")) assert.match(text, /\/opt\/cni\/bin\/cni-nft (restore|resident)/);
        writeFileSync(join(dir, u), text.replaceAll("/opt/cni/bin/cni-nft", "/bin/true"));
      }
      const out = execFileSync("systemd-analyze", ["verify", "--man=no", ...units.map((u) => join(dir, u))], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      });
      assert.equal(out, "");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("the units tie restore to nftables.service and to firewalld's Reloaded signal", () => {
  const restore = readFileSync(join(UNITS, "cni-nft-restore.service"), "utf8");
  assert.match(restore, /^After=nftables\.service$/m);
  assert.match(restore, /^PartOf=nftables\.service$/m);
  assert.match(restore, /^WantedBy=nftables\.service$/m);
  const reload = readFileSync(join(UNITS, "cni-nft-firewalld-reload.service"), "utf8");
  assert.match(reload, /interface=org\.fedoraproject\.FirewallD1,member=Reloaded/);
});

test("the resident daemon's units in deploy/systemd are what cni-nft install --resident writes", () => {
  for (const [name, text] of Object.entries(residentUnits("/opt/cni/bin")))
    assert.equal(readFileSync(join(UNITS, name), "utf8"), text, name);
  const socket = readFileSync(join(UNITS, "cni-nft-resident.socket"), "utf8");
  assert.match(socket, /^ListenStream=\/run\/cni-nft\/resident\/plugins\.sock$/m);
  assert.match(socket, /^SocketMode=0600$/m);
  assert.match(socket, /^DirectoryMode=0700$/m);
  const service = readFileSync(join(UNITS, "cni-nft-resident.service"), "utf8");
  // Sandboxing would put it in a mount namespace of its own: it would serve nobody.
  assert.doesNotMatch(
    service,
    /^(PrivateTmp|ProtectSystem|ProtectHome|PrivateMounts|CapabilityBoundingSet)=/m,
  );
});
