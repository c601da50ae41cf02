/**
 * The demo: a real container network in throwaway namespaces, built by cni-nft's own operator
 * CLI and plugins, and proved with real packets. A "host" namespace runs the chain podman
 * generates (bridge -> portmap -> firewall -> tuning, here on the nftables backends with the MAC
 * spoof check) for two "container" namespaces; an "outside" namespace plays the internet. Servers
 * answer with the client address they see. Everything is removed at the end, also on failure.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NetnsPool, link, run } from "../test/helpers/netns.js";
import { echo, startEchoServer, type EchoServer } from "../test/helpers/echo.js";
import { OUR_BIN, tempDir } from "../test/helpers/cni.js";

const say = (s: string): void => console.log(s);
const nets = new NetnsPool();
const work = tempDir("demo");
const servers: EchoServer[] = [];

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`not proved: ${what}`);
}

async function main(): Promise<void> {
  const [host, outside, web, db] = await Promise.all(
    ["host", "outside", "web", "db"].map((t) => nets.create(`demo-${t}`)),
  );
  const h = host!;
  await link(h, "uplink", outside!, "eth0");
  await h.sh(["ip", "addr", "add", "203.0.113.1/24", "dev", "uplink"]);
  await outside!.sh(["ip", "addr", "add", "203.0.113.2/24", "dev", "eth0"]);
  say(`namespaces: host ${h.name}, outside ${outside!.name}, containers ${web!.name} and ${db!.name}`);

  const netconf = join(work.path, "net.d");
  mkdirSync(netconf);
  const conflist = {
    cniVersion: "1.0.0",
    name: "demo",
    plugins: [
      {
        type: "bridge",
        bridge: "demo0",
        isGateway: true,
        ipMasq: true,
        ipMasqBackend: "nftables",
        macspoofchk: true,
        ipam: {
          type: "host-local",
          dataDir: join(work.path, "ipam"),
          ranges: [[{ subnet: "10.88.0.0/24" }]],
          routes: [{ dst: "0.0.0.0/0" }],
        },
      },
      { type: "portmap", backend: "nftables", capabilities: { portMappings: true } },
      { type: "firewall", backend: "nftables" },
      { type: "tuning" },
    ],
  };
  writeFileSync(join(netconf, "demo.conflist"), JSON.stringify(conflist, null, 2));
  say(
    `network config: ${join(netconf, "demo.conflist")} (bridge -> portmap -> firewall -> tuning, nftables backends)`,
  );

  const cli = async (args: string[], capArgs?: object): Promise<Record<string, unknown>> => {
    const env = {
      PATH: process.env["PATH"],
      NETCONFPATH: netconf,
      CNI_PATH: OUR_BIN,
      CNI_CACHE_DIR: join(work.path, "cache"),
      ...(capArgs ? { CAP_ARGS: JSON.stringify(capArgs) } : {}),
    };
    const r = await run(h.argv([join(OUR_BIN, "cni-nft"), ...args, "--json"]), { env });
    if (r.code !== 0) throw new Error(`cni-nft ${args.join(" ")}: ${r.stdout}${r.stderr}`);
    return r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : {};
  };
  const addr = (r: Record<string, unknown>): string =>
    (r["ips"] as Array<{ address: string }>)[0]!.address.split("/")[0]!;

  const webResult = await cli(["add", "demo", web!.path], {
    portMappings: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }],
  });
  const dbResult = await cli(["add", "demo", db!.path]);
  say(`cni-nft add: web got ${addr(webResult)} (host port 8080 -> its port 80), db got ${addr(dbResult)}`);

  servers.push(await startEchoServer(outside!, "tcp", "0.0.0.0", 9000));
  servers.push(await startEchoServer(web!, "tcp", "0.0.0.0", 80));
  servers.push(await startEchoServer(db!, "tcp", "0.0.0.0", 5432));

  const seenOutside = await echo(web!, "tcp", "203.0.113.2", 9000);
  say(
    `web -> outside 203.0.113.2:9000: the server saw ${seenOutside} (the host's address: masquerade works)`,
  );
  check(seenOutside === "203.0.113.1", "masquerade");

  const seenMapped = await echo(outside!, "tcp", "203.0.113.1", 8080);
  say(`outside -> host 203.0.113.1:8080: answered by web, which saw ${seenMapped} (port mapping works)`);
  check(seenMapped === "203.0.113.2", "port mapping from outside");

  const seenDb = await echo(web!, "tcp", addr(dbResult), 5432);
  say(`web -> db ${addr(dbResult)}:5432: the server saw ${seenDb} (container to container on the bridge)`);
  check(seenDb === addr(webResult), "container to container");

  say("\nnftables tables on the host, one per component:");
  for (const line of (await h.sh(["nft", "list", "tables"])).trim().split("\n")) say(`  ${line}`);

  await cli(["check", "demo", web!.path]);
  say("\ncni-nft check web: every plugin confirms its part");

  await web!.sh(["ip", "link", "set", "eth0", "address", "02:00:00:00:00:66"]);
  const spoofed = await echo(web!, "tcp", "203.0.113.2", 9000, 1500);
  say(
    `web changed its MAC: its traffic is ${spoofed === undefined ? "dropped by the spoof check" : "NOT dropped"}`,
  );
  check(spoofed === undefined, "spoof check");

  await cli(["del", "demo", web!.path]);
  await cli(["del", "demo", db!.path]);
  const left = await h.sh(["nft", "list", "ruleset"]);
  const traces = /id: [0-9a-z-]*cnitool|macspoofchk|cnitool-/.test(left);
  say(
    `cni-nft del of both: per-container rules, map elements and set elements left: ${traces ? "some (bug!)" : "none"}`,
  );
  check(!traces, "DEL leaves no trace");
  check((await echo(outside!, "tcp", "203.0.113.1", 8080, 1500)) === undefined, "port closed after DEL");
  say("outside -> host:8080 after DEL: no answer (the mapping is gone)");
}

main()
  .catch((e: unknown) => {
    console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    for (const s of servers) s.stop();
    await nets.destroyAll();
    work.remove();
    say("all namespaces and files removed");
  });
