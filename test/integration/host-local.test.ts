// rootless: needs no network namespace and no root (scripts/test.sh runs it for every user)
/**
 * host-local through the real executables: concurrency, a dataDir shared with upstream's
 * host-local (same files, same flock), podman fixtures replayed, CHECK, GC, requested IPs.
 * Each test uses its own dataDir under a temp dir (never /var/lib/cni).
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { flockExclusive } from "../../src/cni/index.js";
import { run } from "../helpers/netns.js";
import {
  ensureBuilt,
  execPlugin,
  loadFixtures,
  OUR_BIN,
  shape,
  storeFiles,
  UPSTREAM_BIN,
} from "../helpers/cni.js";

const OURS = join(OUR_BIN, "host-local");
const UPSTREAM = join(UPSTREAM_BIN, "host-local");
let tmp = "";

before(async () => {
  await ensureBuilt();
  tmp = mkdtempSync(join(tmpdir(), "cni-nft-hl-"));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function dataDir(): string {
  return join(tmp, `d${n++}`);
}

function conf(dir: string, ipam: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return {
    cniVersion: "1.0.0",
    name: "net1",
    type: "bridge",
    ipam: { type: "host-local", dataDir: dir, ranges: [[{ subnet: "10.77.0.0/24" }]], ...ipam },
    ...extra,
  };
}

function env(command: string, id: string, extra: Record<string, string> = {}) {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: id,
    CNI_NETNS: "/run/netns/x",
    CNI_IFNAME: "eth0",
    CNI_PATH: OUR_BIN,
    ...extra,
  };
}

function ipFiles(dir: string): string[] {
  return Object.keys(storeFiles(join(dir, "net1"))).filter((f) => /^[0-9a-f.:]+$/.test(f));
}

test("upstream's on-disk format: <ip> holds `<id>\\r\\n<ifname>`, last_reserved_ip.<n>, lock", async () => {
  const [a, b] = [dataDir(), dataDir()];
  for (const [bin, dir] of [
    [UPSTREAM, a],
    [OURS, b],
  ] as const) {
    const r = await execPlugin(
      bin,
      env("ADD", "ctr1"),
      conf(dir, { ranges: [[{ subnet: "10.77.0.0/24" }], [{ subnet: "fd77::/64" }]] }),
    );
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }
  assert.deepEqual(storeFiles(join(b, "net1")), storeFiles(join(a, "net1")));
  assert.equal(storeFiles(join(b, "net1"))["10.77.0.2"], "ctr1\r\neth0");
});

test("the lock excludes upstream's host-local both ways (flock on <dir>/lock)", async () => {
  const dir = dataDir();
  assert.equal((await execPlugin(OURS, env("ADD", "l0"), conf(dir))).code, 0);
  // Upstream-style holder (flock(1) = flock(2) like Go's) blocks ours.
  const holder = run(["flock", join(dir, "net1", "lock"), "sleep", "1"]);
  await new Promise((r) => setTimeout(r, 200));
  let t = Date.now();
  assert.equal((await execPlugin(OURS, env("ADD", "l1"), conf(dir))).code, 0);
  assert.ok(Date.now() - t >= 600, `ours waited for the lock (${Date.now() - t} ms)`);
  await holder;
  // Our lock blocks upstream's host-local.
  const lock = await flockExclusive(join(dir, "net1", "lock"));
  t = Date.now();
  const up = execPlugin(UPSTREAM, env("ADD", "l2"), conf(dir));
  await new Promise((r) => setTimeout(r, 800));
  await lock.release();
  assert.equal((await up).code, 0);
  assert.ok(Date.now() - t >= 750, "upstream waited for our lock");
});

test("50 parallel ADDs in one range: no duplicate; DEL of all empties the range", async () => {
  const dir = dataDir();
  const ids = Array.from({ length: 50 }, (_, i) => `par${i}`);
  const adds = await Promise.all(ids.map((id) => execPlugin(OURS, env("ADD", id), conf(dir))));
  const addrs = adds.map((r) => {
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return (r.json!.ips as { address: string }[])[0]!.address;
  });
  assert.equal(new Set(addrs).size, 50, "no duplicate address");
  assert.equal(ipFiles(dir).length, 50);
  const dels = await Promise.all(ids.map((id) => execPlugin(OURS, env("DEL", id), conf(dir))));
  for (const r of dels) assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual(ipFiles(dir), []);
});

test("a dataDir shared with upstream's host-local, used alternately and concurrently", async () => {
  const dir = dataDir();
  const ids = Array.from({ length: 40 }, (_, i) => `mix${i}`);
  const runs = await Promise.all(
    ids.map((id, i) => execPlugin(i % 2 ? OURS : UPSTREAM, env("ADD", id), conf(dir))),
  );
  const addrs = runs.map((r) => {
    assert.equal(r.code, 0, r.stdout + r.stderr);
    return (r.json!.ips as { address: string }[])[0]!.address;
  });
  assert.equal(new Set(addrs).size, 40, "no duplicate across implementations");
  // Sequential alternation continues round-robin from each other's last_reserved_ip.
  const next1 = await execPlugin(UPSTREAM, env("ADD", "seq1"), conf(dir));
  const next2 = await execPlugin(OURS, env("ADD", "seq2"), conf(dir));
  const ip = (r: typeof next1) => (r.json!.ips as { address: string }[])[0]!.address.split("/")[0]!;
  assert.equal(Number(ip(next2).split(".")[3]), Number(ip(next1).split(".")[3]) + 1);
  // Each releases what the other allocated; CHECK agrees.
  for (const [i, id] of ids.entries()) {
    const chk = await execPlugin(i % 2 ? UPSTREAM : OURS, env("CHECK", id), conf(dir));
    assert.equal(chk.code, 0, chk.stdout);
  }
  const dels = await Promise.all(
    ids.map((id, i) => execPlugin(i % 2 ? UPSTREAM : OURS, env("DEL", id), conf(dir))),
  );
  for (const r of dels) assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual(ipFiles(dir).sort(), [ip(next1), ip(next2)].sort());
});

test("round-robin and exhaustion match upstream step by step", async () => {
  const [a, b] = [dataDir(), dataDir()];
  const ipam = {
    ranges: [
      [{ subnet: "10.78.0.0/29", rangeStart: "10.78.0.2", rangeEnd: "10.78.0.5" }],
      [{ subnet: "fd78::/125", gateway: "fd78::3" }],
    ],
  };
  const seq: [string, string][] = [
    ["ADD", "a"],
    ["ADD", "b"],
    ["DEL", "a"],
    ["ADD", "c"],
    ["ADD", "d"],
    ["ADD", "e"],
    ["ADD", "f"],
    ["DEL", "c"],
    ["ADD", "g"],
    ["CHECK", "g"],
    ["CHECK", "zz"],
  ];
  for (const [verb, id] of seq) {
    const up = await execPlugin(UPSTREAM, env(verb, id), conf(a, ipam));
    const us = await execPlugin(OURS, env(verb, id), conf(b, ipam));
    assert.equal(us.code, up.code, `${verb} ${id}: ${us.stdout} vs ${up.stdout}`);
    if (up.code === 0) assert.deepEqual(us.json, up.json, `${verb} ${id}`);
    else assert.equal(us.json?.msg, up.json?.msg, `${verb} ${id}`);
  }
  assert.deepEqual(storeFiles(join(b, "net1")), storeFiles(join(a, "net1")));
});

test("requested IPs: CNI_ARGS IP=, args.cni.ips, runtimeConfig.ips; gateway refused; taken refused", async () => {
  const dir = dataDir();
  const ipam = { ranges: [[{ subnet: "10.79.0.0/24" }], [{ subnet: "fd79::/64" }]] };
  let r = await execPlugin(
    OURS,
    env("ADD", "r1", { CNI_ARGS: "IgnoreUnknown=1;IP=10.79.0.50,fd79::50" }),
    conf(dir, ipam),
  );
  assert.deepEqual(r.json!.ips, [
    { address: "10.79.0.50/24", gateway: "10.79.0.1" },
    { address: "fd79::50/64", gateway: "fd79::1" },
  ]);
  r = await execPlugin(OURS, env("ADD", "r2"), conf(dir, ipam, { args: { cni: { ips: ["10.79.0.60"] } } }));
  assert.equal((r.json!.ips as { address: string }[])[0]!.address, "10.79.0.60/24");
  r = await execPlugin(
    OURS,
    env("ADD", "r3"),
    conf(dir, ipam, { runtimeConfig: { ips: ["10.79.0.70/24"] } }),
  );
  assert.equal((r.json!.ips as { address: string }[])[0]!.address, "10.79.0.70/24");
  r = await execPlugin(OURS, env("ADD", "r4", { CNI_ARGS: "IP=10.79.0.1" }), conf(dir, ipam));
  assert.match(String(r.json!.msg), /is subnet's gateway/);
  r = await execPlugin(OURS, env("ADD", "r5", { CNI_ARGS: "IP=10.79.0.50" }), conf(dir, ipam));
  assert.match(String(r.json!.msg), /not available/);
  r = await execPlugin(OURS, env("ADD", "r6", { CNI_ARGS: "IP=10.80.0.5" }), conf(dir, ipam));
  assert.match(String(r.json!.msg), /failed to allocate all requested IPs: 10.80.0.5/);
  assert.ok(!ipFiles(dir).some((f) => storeFiles(join(dir, "net1"))[f]!.startsWith("r6")), "rolled back");
  r = await execPlugin(OURS, env("ADD", "r7", { CNI_ARGS: "K8S_POD_NAME=x" }), conf(dir, ipam));
  assert.match(String(r.json!.msg), /unknown args/);
  r = await execPlugin(OURS, env("ADD", "r1"), conf(dir, ipam));
  assert.match(String(r.json!.msg), /duplicate allocation is not allowed/);
});

test("config errors are code 7 naming the problem; resolvConf fills dns; 0.2.0 output", async () => {
  const dir = dataDir();
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ranges: [[{ subnet: "10.0.0.0/31" }]] }, /too small to allocate/],
    [{ ranges: [[{ subnet: "10.0.0.1/24" }]] }, /host bits set/],
    [{ ranges: [[{ subnet: "10.0.0.0/24", rangeStart: "10.0.1.5" }]] }, /RangeStart 10.0.1.5 not in network/],
    [{ ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "10.0.0.0/25" }]] }, /range set 0 overlaps with 1/],
    [{ ranges: [[{ subnet: "10.0.0.0/24" }, { subnet: "fd::/64" }]] }, /mixed address families/],
    [{ ranges: [] }, /no IP ranges specified/],
    [{ ranges: [[{ subnet: "banana" }]] }, /ipam.ranges\[0\]\[0\].subnet: must be a CIDR/],
  ];
  for (const [ipam, re] of cases) {
    const r = await execPlugin(OURS, env("ADD", "x"), conf(dir, ipam));
    assert.equal(r.json?.code, 7, r.stdout);
    assert.match(String(r.json?.msg), re);
    assert.doesNotMatch(r.stdout + r.stderr, /\s+at /);
  }
  const rc = join(tmp, "resolv.conf");
  writeFileSync(
    rc,
    "# c\nnameserver 10.0.0.53\nnameserver fd::53\ndomain example\nsearch a b\noptions ndots:2\n",
  );
  const r = await execPlugin(OURS, env("ADD", "dns"), conf(dir, { resolvConf: rc }));
  assert.deepEqual(r.json!.dns, {
    nameservers: ["10.0.0.53", "fd::53"],
    domain: "example",
    search: ["a", "b"],
    options: ["ndots:2"],
  });
  const old = await execPlugin(OURS, env("ADD", "old"), { ...conf(dir), cniVersion: "0.2.0" });
  assert.deepEqual(old.json, {
    cniVersion: "0.2.0",
    ip4: { ip: "10.77.0.3/24", gateway: "10.77.0.1" },
    dns: {},
  });
});

test("GC releases reservations not in cni.dev/valid-attachments", async () => {
  const dir = dataDir();
  for (const id of ["g1", "g2", "g3"])
    assert.equal((await execPlugin(OURS, env("ADD", id), conf(dir))).code, 0);
  const gc = await execPlugin(
    OURS,
    { CNI_COMMAND: "GC", CNI_PATH: OUR_BIN },
    {
      ...conf(dir),
      cniVersion: "1.1.0",
      "cni.dev/valid-attachments": [
        { containerID: "g2", ifname: "eth0" },
        { containerID: "g3", ifname: "eth1" },
      ],
    },
  );
  assert.equal(gc.code, 0, gc.stdout);
  const files = storeFiles(join(dir, "net1"));
  assert.deepEqual(
    ipFiles(dir).map((f) => files[f]),
    ["g2\r\neth0"],
  );
});

for (const { name, fx } of loadFixtures("host-local")) {
  test(`podman fixture replay: ${name}`, async () => {
    const [a, b] = [dataDir(), dataDir()];
    const withDir = (d: string) => ({ ...fx.stdin, ipam: { ...(fx.stdin.ipam as object), dataDir: d } });
    const run = async (bin: string, d: string) => {
      if (fx.command !== "ADD") {
        // DEL/CHECK need the allocation first.
        const add = await execPlugin(
          bin,
          { ...fx.cni_env, CNI_COMMAND: "ADD", CNI_PATH: OUR_BIN },
          withDir(d),
        );
        assert.equal(add.code, 0, add.stdout);
      }
      return execPlugin(bin, { ...fx.cni_env, CNI_PATH: OUR_BIN }, withDir(d));
    };
    const us = await run(OURS, b);
    const up = await run(UPSTREAM, a);
    assert.equal(us.code, fx.exit_code, us.stdout + us.stderr);
    assert.deepEqual(shape(us.json ?? null), shape(fx.stdout));
    assert.deepEqual(us.json ?? null, up.json ?? null, "same output as upstream on the same input");
    assert.deepEqual(
      storeFiles(join(b, fx.stdin.name as string)),
      storeFiles(join(a, fx.stdin.name as string)),
    );
  });
}
