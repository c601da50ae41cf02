/**
 * The resident daemon on the real kernel (docs/resident.md): podman's chain through a daemon
 * started in a throwaway host namespace, with real packets through the network it made; the
 * same output and exit code as in-process for bad calls; refusal of callers in another network
 * or mount namespace (the plugin then runs in-process and succeeds); parallel ADDs; a client
 * killed mid-ADD, then DEL or GC; and descriptors and memory bounded over a few hundred calls.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { NetnsPool, link, sweepStaleNamespaces, type Netns } from "../helpers/netns.js";
import { cni, firewallState, storeFiles, tempDir, type CniCall } from "../helpers/cni.js";
import { chainAdd, chainConfs, chainDel, chainGc, type Conf } from "../helpers/chain.js";
import { echo, startEchoServer } from "../helpers/echo.js";
import { waitFor } from "../helpers/background.js";
import {
  COMPILED,
  haveCompiled,
  holdStoreLock,
  startClient,
  startResident,
  type Resident,
} from "../helpers/resident.js";
import { existsSync } from "node:fs";

const skip = haveCompiled ? false : "no compiled binary (npm run build)";
const nets = new NetnsPool();
before(sweepStaleNamespaces);
after(() => nets.destroyAll());

const HOST_V4 = "203.0.113.1";
const OUT_V4 = "203.0.113.2";

function through(r: Resident, extra: Partial<CniCall> = {}): Partial<CniCall> {
  return { bin: COMPILED, nsenter: true, env: r.env, ...extra };
}

/**
 * A fresh host with a daemon serving a bridge ADD that waits in it for the IPAM store's lock (held
 * here), so the call is in flight whatever the machine's speed.
 */
async function addInFlight(tag: string, subnet: string, containerId: string) {
  const [host, c] = await Promise.all([nets.create(`${tag}h`), nets.create(`${tag}c`)]);
  const store = tempDir(`resident-${tag}`);
  const name = `${tag}net`;
  const conf = chainConfs({ name, backend: "nftables", dataDir: store.path, subnet })[0]!;
  const daemon = await startResident(host);
  const lock = await holdStoreLock(store.path, name);
  const child = startClient(host, daemon, "bridge", "ADD", containerId, c.path);
  let stdout = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number>((r) => child.once("exit", (code) => r(code ?? -1)));
  child.stdin.end(JSON.stringify(conf));
  await waitFor("the daemon to start the ADD", () =>
    daemon.lines(/start bridge ADD/).length ? true : undefined,
  );
  return { host, c, store, conf, daemon, lock, exited, stdout: () => stdout };
}

describe("resident daemon", { skip }, () => {
  let host: Netns;
  let out: Netns;
  let daemon: Resident;
  let store: { path: string; remove: () => void };
  let confs: Conf[];
  let empty: string;

  before(async () => {
    [host, out] = await Promise.all([nets.create("rsh"), nets.create("rso")]);
    await link(host, "uplink", out, "eth0");
    await host.sh(["ip", "addr", "add", `${HOST_V4}/24`, "dev", "uplink"]);
    await out.sh(["ip", "addr", "add", `${OUT_V4}/24`, "dev", "eth0"]);
    store = tempDir("resident-ipam");
    confs = chainConfs({
      name: "rsnet",
      backend: "nftables",
      dataDir: store.path,
      subnet: "10.211.0.0/24",
      tuning: true,
    });
    // What a chain ADD and DEL in-process leave (the shared skeleton stays): the daemon's must too.
    const w = await nets.create("rsw");
    const warm = { containerId: "rs-warm", netns: w.path, hostPort: 8079 };
    const inProcess = { bin: COMPILED, nsenter: true };
    const add = await chainAdd(host, confs, warm, { call: inProcess });
    assert.equal(add.failed, undefined, JSON.stringify(add.failed?.result));
    assert.deepEqual(await chainDel(host, confs, warm, add.result, inProcess), []);
    empty = await firewallState(host);
    daemon = await startResident(host);
  });
  after(async () => {
    await daemon?.stop();
    store?.remove();
  });

  test("podman's chain through the daemon: real packets through the mapped port, DEL leaves nothing", async () => {
    const c = await nets.create("rsc");
    const served = daemon.lines(/^cni-nft resident: done /).length;
    const a = { containerId: "rs-chain", netns: c.path, hostPort: 8080 };
    const add = await chainAdd(host, confs, a, { call: through(daemon) });
    assert.equal(add.failed, undefined, JSON.stringify(add.failed?.result));
    assert.equal(daemon.lines(/^cni-nft resident: done /).length - served, 4, daemon.log());
    const server = await startEchoServer(c, "tcp", "0.0.0.0", 80);
    try {
      assert.equal(await echo(out, "tcp", HOST_V4, 8080), OUT_V4, "outside -> host port -> container");
    } finally {
      server.stop();
    }
    const failures = await chainDel(host, confs, a, add.result, through(daemon));
    assert.deepEqual(failures, []);
    assert.equal(daemon.lines(/^cni-nft resident: done /).length - served, 8);
    assert.equal(await firewallState(host), empty);
    assert.deepEqual(
      Object.keys(storeFiles(`${store.path}/rsnet`)).filter((f) => /^\d/.test(f)),
      [],
    );
  });

  test("bad calls: the same output and exit code as in-process", async () => {
    const c = await nets.create("rsb");
    const bad: Array<[string, string, object, Partial<CniCall>]> = [
      [
        "bridge",
        "ADD",
        { cniVersion: "1.0.0", name: "rsnet", type: "bridge", mtu: "big" },
        { netns: c.path },
      ],
      ["bridge", "ADD", { cniVersion: "9.9.9", name: "rsnet", type: "bridge" }, { netns: c.path }],
      [
        "portmap",
        "ADD",
        { cniVersion: "1.0.0", name: "rsnet", type: "portmap", backend: "pf" },
        { netns: c.path },
      ],
      ["tuning", "ADD", { cniVersion: "1.0.0", name: "rsnet", type: "tuning" }, { netns: "" }],
      ["firewall", "DEL", { cniVersion: "1.0.0", name: "rs net", type: "firewall" }, {}],
    ];
    for (const [plugin, verb, conf, call] of bad) {
      const before = daemon.lines(/^cni-nft resident: done /).length;
      const viaDaemon = await cni(host, plugin, verb, conf, {
        containerId: "rs-bad",
        ...through(daemon),
        ...call,
      });
      assert.equal(
        daemon.lines(/^cni-nft resident: done /).length,
        before + 1,
        `${plugin} ${verb} was served`,
      );
      const inProcess = await cni(host, plugin, verb, conf, {
        containerId: "rs-bad",
        ...through(daemon, { env: { CNI_NFT_RESIDENT: "off" } }),
        ...call,
      });
      assert.notEqual(inProcess.code, 0, `${plugin} ${verb} fails`);
      assert.deepEqual(
        { code: viaDaemon.code, stdout: viaDaemon.stdout, stderr: viaDaemon.stderr },
        { code: inProcess.code, stdout: inProcess.stdout, stderr: inProcess.stderr },
      );
    }
    assert.equal(await firewallState(host), empty);
  });

  test("parallel ADDs of podman's chain through the daemon all succeed; their DELs leave nothing", async () => {
    const n = 8;
    const cs = await Promise.all(Array.from({ length: n }, (_, i) => nets.create(`rsp${i}`)));
    const as = cs.map((c, i) => ({ containerId: `rs-par${i}`, netns: c.path, hostPort: 9000 + i }));
    const adds = await Promise.all(as.map((a) => chainAdd(host, confs, a, { call: through(daemon) })));
    for (const add of adds) assert.equal(add.failed, undefined, JSON.stringify(add.failed?.result));
    const addresses = adds.map((x) => (x.result as { ips: Array<{ address: string }> }).ips[0]!.address);
    assert.equal(new Set(addresses).size, n, "every container its own address");
    const dels = await Promise.all(
      as.map((a, i) => chainDel(host, confs, a, adds[i]!.result, through(daemon))),
    );
    assert.deepEqual(dels.flat(), []);
    assert.equal(await firewallState(host), empty);
  });

  test("a client killed in the middle of ADD: the daemon finishes it, the DEL after it cleans", async () => {
    for (const cleanup of ["DEL", "GC"] as const) {
      const c = await nets.create(`rsk${cleanup}`);
      const a = { containerId: `rs-kill-${cleanup.toLowerCase()}`, netns: c.path };
      const starts = daemon.lines(/start bridge ADD/).length;
      const lock = await holdStoreLock(store.path, "rsnet"); // the ADD waits for IPAM in the daemon
      const child = startClient(host, daemon, "bridge", "ADD", a.containerId, a.netns);
      child.stdin.end(JSON.stringify(confs[0]));
      await waitFor("the daemon to start the ADD", () =>
        daemon.lines(/start bridge ADD/).length > starts ? true : undefined,
      );
      child.kill("SIGKILL"); // the runtime's timeout
      lock.release();
      if (cleanup === "DEL") {
        assert.deepEqual(await chainDel(host, confs, a, undefined, through(daemon)), []);
      } else {
        await waitFor("the killed ADD to finish", () =>
          daemon.lines(new RegExp(`done bridge ADD ${a.containerId}`)).length ? true : undefined,
        );
        const gcConfs = confs.map((x) => ({ ...x, cniVersion: "1.1.0" }));
        assert.deepEqual(await chainGc(host, gcConfs, [], through(daemon)), []);
        await c.destroy(); // the runtime removes the namespace; GC does not enter it
      }
      assert.equal(await firewallState(host), empty, `after ${cleanup}`);
      assert.deepEqual(
        Object.keys(storeFiles(`${store.path}/rsnet`)).filter((f) => /^\d/.test(f)),
        [],
        `after ${cleanup}`,
      );
    }
  });

  test("descriptors and memory stay bounded over a few hundred calls", async (t) => {
    const tuning = { cniVersion: "1.0.0", name: "rsnet", type: "tuning" };
    const c = await nets.create("rss");
    const cycle = async (i: number): Promise<void> => {
      const a = { containerId: `rs-soak${i}`, netns: c.path };
      const add = await chainAdd(host, confs.slice(0, 1), a, { call: through(daemon) });
      assert.equal(add.failed, undefined, JSON.stringify(add.failed?.result));
      for (let k = 0; k < 8; k++) {
        const r = await cni(
          host,
          "tuning",
          k % 2 ? "DEL" : "ADD",
          { ...tuning, prevResult: add.result },
          { containerId: a.containerId, netns: c.path, ...through(daemon) },
        );
        assert.equal(r.code, 0, r.stdout);
      }
      assert.deepEqual(await chainDel(host, confs.slice(0, 1), a, add.result, through(daemon)), []);
    };
    for (let i = 0; i < 5; i++) await cycle(i); // warm: modules loaded, contexts made
    const warm = daemon.usage();
    const cycles = Number(process.env["CNI_NFT_RESIDENT_SOAK_CYCLES"] ?? 30); // 10 calls each
    for (let i = 5; i < 5 + cycles; i++) await cycle(i);
    // What a finished program leaves (its stdin's memfd) goes with the daemon's garbage, collected
    // between calls: bounded means back to the warm count once the daemon is idle.
    const later = await waitFor(
      "the daemon's descriptors to come back to the warm count",
      () => {
        const u = daemon.usage();
        return u.fds <= warm.fds ? u : undefined;
      },
      30_000,
    ).catch(() => daemon.usage());
    t.diagnostic(
      `after warm-up ${JSON.stringify(warm)}, after ${cycles * 10} more calls ${JSON.stringify(later)}`,
    );
    assert.ok(later.fds <= warm.fds, `descriptors ${warm.fds} -> ${later.fds}: ${later.fdTargets.join(" ")}`);
    // A garbage-collected heap breathes: bounded means well under the warm figure again.
    assert.ok(later.rssKiB < warm.rssKiB * 1.5, `RSS ${warm.rssKiB} -> ${later.rssKiB} KiB`);
    assert.equal(await firewallState(host), empty);
  });
});

describe("resident daemon: callers it must not serve run in-process", { skip }, () => {
  test("a daemon in another network namespace, or another mount namespace, refuses; the call succeeds in-process", async () => {
    const [host, other] = await Promise.all([nets.create("rfh"), nets.create("rfo")]);
    const c = await nets.create("rfc");
    const store = tempDir("resident-refused");
    const conf = chainConfs({
      name: "rfnet",
      backend: "nftables",
      dataDir: store.path,
      subnet: "10.212.0.0/24",
    })[0]!;
    for (const [where, ns, enter] of [
      ["network", other, "nsenter"],
      ["mount", host, "ip-netns-exec"],
    ] as const) {
      const daemon = await startResident(ns, { enter });
      try {
        const call = { containerId: `rf-${where}`, netns: c.path, ...through(daemon) };
        const add = await cni(host, "bridge", "ADD", conf, call);
        assert.equal(add.code, 0, add.stdout);
        assert.equal(daemon.lines(/refused: caller in another/).length, 1, daemon.log());
        assert.match(daemon.log(), new RegExp(`refused: caller in another ${where} namespace`));
        assert.equal(daemon.lines(/done /).length, 0);
        const del = await cni(host, "bridge", "DEL", { ...conf, prevResult: add.json }, call);
        assert.equal(del.code, 0, del.stdout);
      } finally {
        await daemon.stop();
      }
    }
    store.remove();
  });

  test("no daemon: a socket path with nothing behind it, or in a directory others may write to, is not used", async () => {
    const host = await nets.create("rnh");
    const dir = tempDir("resident-none");
    const tuning = { cniVersion: "1.0.0", name: "rnnet", type: "tuning" };
    for (const socket of [`${dir.path}/absent.sock`, "/tmp/plugins.sock"]) {
      const r = await cni(host, "tuning", "DEL", tuning, {
        containerId: "rn",
        bin: COMPILED,
        nsenter: true,
        env: { CNI_NFT_RESIDENT_SOCKET: socket },
      });
      assert.equal(r.code, 0, r.stdout);
      assert.equal(r.stdout + r.stderr, "");
    }
    dir.remove();
  });
});

describe("resident daemon: life", { skip }, () => {
  test("SIGTERM lets the call in flight finish and answer, then the daemon exits; --idle-exit ends an idle one", async () => {
    const run = await addInFlight("rl", "10.213.0.0/24", "rl-term");
    const { daemon, exited, stdout: out } = run;
    process.kill(daemon.pid, "SIGTERM");
    await waitFor("the daemon to drain", () =>
      daemon.log().includes("draining (SIGTERM)") ? true : undefined,
    );
    run.lock.release();
    assert.equal(await exited, 0, out());
    assert.match(out(), /"address": "10\.213\.0\.\d+\/24"/);
    await waitFor("the daemon to stop", () => (daemon.log().includes("stopping:") ? true : undefined));
    assert.match(daemon.log(), /draining \(SIGTERM\)/);
    assert.match(daemon.log(), /stopping: 1 calls served/);
    await daemon.stop();
    const del = await cni(
      run.host,
      "bridge",
      "DEL",
      { ...run.conf, prevResult: JSON.parse(out()) as object },
      {
        containerId: "rl-term",
        netns: run.c.path,
        bin: COMPILED,
        nsenter: true,
      },
    );
    assert.equal(del.code, 0, del.stdout);

    const idle = await startResident(run.host, { args: ["--idle-exit", "1"] });
    await waitFor("the idle daemon to exit", () => (idle.log().includes("stopping:") ? true : undefined));
    await waitFor("its socket to go", () => (existsSync(idle.socket) ? undefined : true));
    assert.match(idle.log(), /draining \(idle for 1 s\)/);
    await idle.stop();
    run.store.remove();
  });
});

describe("resident daemon: killed", { skip }, () => {
  test("a daemon killed in the middle of a call: the client says so (code 999) and does not run it again; a stale socket means in-process", async () => {
    const run = await addInFlight("rx", "10.214.0.0/24", "rx-kill");
    const { daemon, exited, stdout: out } = run;
    process.kill(daemon.pid, "SIGKILL");
    assert.equal(await exited, 1);
    run.lock.release();
    const err = JSON.parse(out()) as { code: number; msg: string; cniVersion: string };
    assert.equal(err.code, 999);
    assert.equal(err.cniVersion, "1.0.0");
    assert.match(err.msg, /resident daemon ended before answering/);
    assert.ok(existsSync(daemon.socket), "a SIGKILLed daemon leaves its socket");
    // The runtime's DEL finds the stale socket (connection refused) and runs in-process: it cleans.
    const call = { containerId: "rx-kill", netns: run.c.path, bin: COMPILED, nsenter: true, env: daemon.env };
    const del = await cni(run.host, "bridge", "DEL", run.conf, call);
    assert.equal(del.code, 0, del.stdout);
    assert.equal(del.stdout + del.stderr, "");
    assert.deepEqual(
      Object.keys(storeFiles(`${run.store.path}/rxnet`)).filter((f) => /^\d/.test(f)),
      [],
    );
    const links = await run.host.sh(["ip", "-o", "link", "show", "type", "veth"]);
    assert.equal(links.trim(), "", "no veth left on the host");
    await daemon.stop();
    run.store.remove();
  });
});
