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

const UNITS = join(ROOT, "deploy", "systemd");
const analyze = spawnSync("sh", ["-c", "command -v systemd-analyze"]).status === 0;

test(
  "deploy/systemd units pass systemd-analyze verify",
  { skip: analyze ? false : "systemd-analyze not installed" },
  () => {
    const dir = mkdtempSync(join(tmpdir(), "cni-nft-units-"));
    try {
      const units = readdirSync(UNITS).filter((f) => f.endsWith(".service"));
      assert.deepEqual(units.sort(), ["cni-nft-firewalld-reload.service", "cni-nft-restore.service"]);
      for (const u of units) {
        const text = readFileSync(join(UNITS, u), "utf8");
        assert.match(text, /\/opt\/cni\/bin\/cni-nft restore/);
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
