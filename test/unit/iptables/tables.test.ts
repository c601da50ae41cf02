import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeRunner, type Answer, type RecordedCommand } from "../../../src/process/fake.js";
import { SystemIptables } from "../../../src/iptables/iptables.js";
import { SystemKernelTables, legacyTables } from "../../../src/iptables/tables.js";

/** nft listing one table's sets by name: the tables in `present` exist (with no sets), no other. */
const nftWith =
  (present: string[]) =>
  (cmd: RecordedCommand): Answer => {
    const table = cmd.argv.slice(-2).join(" ");
    return present.includes(table)
      ? { code: 0, stdout: '{"nftables": [{"metainfo": {"json_schema_version": 1}}]}\n' }
      : { code: 1, stderr: `Error: No such file or directory\nlist sets table ${table}\n` };
  };

const LIST = (table: string): string => `nft --json --terse list sets table ${table}`;

test("iptables-nft: a table the kernel lacks is read without iptables-save; each asked for by name, never by a checked batch", async () => {
  const runner = new FakeRunner().on(["nft"], nftWith(["ip6 nat"]));
  const ipt = new SystemIptables(runner, new SystemKernelTables({ runner, variant: "nft" }));
  runner.on(["ip6tables-save"], { stdout: "*nat\n:PREROUTING ACCEPT [0:0]\n:CNI-X - [0:0]\nCOMMIT\n" });
  const [v4, v6, filter] = await Promise.all([ipt.save(4, "nat"), ipt.save(6, "nat"), ipt.save(4, "filter")]);
  await ipt.save(4, "nat");
  assert.deepEqual([...v4.chains], ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]);
  assert.deepEqual(v4.rules, []);
  assert.deepEqual([...v6.chains], ["PREROUTING", "CNI-X"]);
  assert.deepEqual([...filter.chains], ["INPUT", "FORWARD", "OUTPUT"]);
  // One listing per family and table (remembered), no `--check`: the kernel aborts a checked batch.
  assert.deepEqual(runner.commandLines().sort(), [
    "ip6tables-save -t nat",
    LIST("ip filter"),
    LIST("ip nat"),
    LIST("ip6 nat"),
  ]);
});

test("iptables-nft: after this process changes iptables the tables are asked for again", async () => {
  const runner = new FakeRunner()
    .once(["nft"], nftWith([]))
    .on(["nft"], nftWith(["ip nat"]))
    .on(["iptables-restore"], {})
    .on(["iptables-save"], { stdout: "*nat\n:POSTROUTING ACCEPT [0:0]\n:CNI-A - [0:0]\nCOMMIT\n" });
  const ipt = new SystemIptables(runner, new SystemKernelTables({ runner, variant: "nft" }));
  assert.deepEqual((await ipt.save(4, "nat")).rules, []);
  await ipt.restore(4, "nat", [":CNI-A - [0:0]"]);
  assert.ok((await ipt.save(4, "nat")).chains.has("CNI-A"));
  assert.deepEqual(runner.commandLines(), [
    LIST("ip nat"),
    "iptables-restore -w --noflush",
    LIST("ip nat"),
    "iptables-save -t nat",
  ]);
});

test("a failed check, or an unknown variant, runs iptables-save as before", async () => {
  for (const kernel of [
    (r: FakeRunner) =>
      new SystemKernelTables({ runner: r.on(["nft"], { code: 1, stderr: "boom" }), variant: "nft" }),
    (r: FakeRunner) => new SystemKernelTables({ runner: r, variant: "unknown" }),
  ]) {
    const runner = new FakeRunner().on(["iptables-save"], {
      stdout: "*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n",
    });
    const ipt = new SystemIptables(runner, kernel(runner));
    await ipt.save(4, "nat");
    assert.ok(runner.commandLines().includes("iptables-save -t nat"));
  }
});

test("iptables-legacy: its tables are read from /proc/net/ip_tables_names, no process", async () => {
  const files: Record<string, string> = { "/proc/net/ip_tables_names": "filter\nnat\n" };
  const read = (p: string): string => {
    const f = files[p];
    if (f === undefined) throw new Error("ENOENT");
    return f;
  };
  assert.deepEqual(legacyTables(4, read), ["filter", "nat"]);
  assert.deepEqual(legacyTables(6, read), []);
  const tables = new SystemKernelTables({ variant: "legacy", read });
  assert.equal(await tables.mayHold(4, "nat"), true);
  assert.equal(await tables.mayHold(4, "mangle"), false);
  assert.equal(await tables.mayHold(6, "nat"), false);
});
