import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeRunner, type Answer, type RecordedCommand } from "../../../src/process/fake.js";
import { SystemIptables } from "../../../src/iptables/iptables.js";
import { SystemKernelTables, legacyTables } from "../../../src/iptables/tables.js";

/** nft checking `create table`s: File exists for the first in `present`, success otherwise. */
const nftWith =
  (present: string[]) =>
  (cmd: RecordedCommand): Answer => {
    const tables = [...cmd.stdin.matchAll(/^create table (\S+ \S+)/gm)].map((m) => m[1]!);
    const line = tables.findIndex((t) => present.includes(t)) + 1;
    return line > 0
      ? { code: 1, stderr: `/dev/stdin:${line}:14-20: Error: Could not process rule: File exists\n` }
      : { code: 0 };
  };

test("iptables-nft: a table the kernel lacks is read without iptables-save; both families checked by name in one run", async () => {
  const runner = new FakeRunner().on(["nft"], nftWith(["ip6 nat"]));
  const ipt = new SystemIptables(runner, new SystemKernelTables({ runner, variant: "nft" }));
  runner.on(["ip6tables-save"], { stdout: "*nat\n:PREROUTING ACCEPT [0:0]\n:CNI-X - [0:0]\nCOMMIT\n" });
  const [v4, v6, filter] = await Promise.all([ipt.save(4, "nat"), ipt.save(6, "nat"), ipt.save(4, "filter")]);
  await ipt.save(4, "nat");
  assert.deepEqual([...v4.chains], ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]);
  assert.deepEqual(v4.rules, []);
  assert.deepEqual([...v6.chains], ["PREROUTING", "CNI-X"]);
  assert.deepEqual([...filter.chains], ["INPUT", "FORWARD", "OUTPUT"]);
  assert.deepEqual(runner.commandLines().sort(), [
    "ip6tables-save -t nat",
    "nft --check -f -",
    "nft --check -f -",
    "nft --check -f -",
    "nft --check -f -",
  ]);
  // filter: neither family has it, one run; nat: ip6 has it, so each family on its own.
  assert.deepEqual(
    runner.calls
      .filter((c) => c.argv[0] === "nft")
      .map((c) => c.stdin)
      .sort(),
    [
      "create table ip filter\ncreate table ip6 filter\n",
      "create table ip nat\n",
      "create table ip nat\ncreate table ip6 nat\n",
      "create table ip6 nat\n",
    ],
  );
});

test("iptables-nft: after this process changes iptables the tables are checked again", async () => {
  const runner = new FakeRunner()
    .once(["nft"], nftWith([]))
    .on(["nft"], nftWith(["ip nat"]))
    .on(["iptables-restore"], {})
    .on(["iptables-save"], { stdout: "*nat\n:POSTROUTING ACCEPT [0:0]\n:CNI-A - [0:0]\nCOMMIT\n" });
  const ipt = new SystemIptables(runner, new SystemKernelTables({ runner, variant: "nft" }));
  assert.deepEqual((await ipt.save(4, "nat")).rules, []);
  await ipt.restore(4, "nat", [":CNI-A - [0:0]"]);
  assert.ok((await ipt.save(4, "nat")).chains.has("CNI-A"));
  const lines = runner.commandLines();
  assert.deepEqual(lines.slice(0, 2), ["nft --check -f -", "iptables-restore -w --noflush"]);
  assert.deepEqual(lines.slice(2).sort(), [
    "iptables-save -t nat",
    "nft --check -f -",
    "nft --check -f -",
    "nft --check -f -",
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
