import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { systemBusMayBeThere } from "../../plugins/meta/firewall/firewall_firewalld.js";

test("firewalld is not asked for (no dbus-send) when the system bus socket cannot exist", () => {
  const dir = mkdtempSync(join(tmpdir(), "cni-nft-bus-"));
  try {
    const socket = join(dir, "bus");
    assert.equal(systemBusMayBeThere({ DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${socket}` }), false);
    writeFileSync(socket, "");
    assert.equal(systemBusMayBeThere({ DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${socket}` }), true);
    // one address of a list is enough; forms we cannot check are left to dbus-send
    assert.equal(
      systemBusMayBeThere({ DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${dir}/none;unix:path=${socket}` }),
      true,
    );
    assert.equal(systemBusMayBeThere({ DBUS_SYSTEM_BUS_ADDRESS: "unix:abstract=/tmp/dbus-x" }), true);
    assert.equal(systemBusMayBeThere({ DBUS_SYSTEM_BUS_ADDRESS: "tcp:host=localhost,port=1" }), true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
