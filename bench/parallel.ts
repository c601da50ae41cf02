/**
 * Parallel ADDs into an empty host: ROUNDS rounds of WIDTH chain ADDs (bridge -> portmap ->
 * firewall) started at once, each round in a fresh host namespace, then DEL of all. Prints the
 * failures per round and their messages. Issue 15's reproduction of nft's "Interrupted system
 * call" (a netlink dump interrupted by a concurrent change).
 *
 * In a /run of its own (bench/lib/private-run.ts; `--shared-run` keeps the machine's): the
 * plugins' lock files are then the rounds' alone.
 *
 *   node --import tsx bench/parallel.ts [--shared-run] [rounds=5] [width=50] [backend=nftables]
 */
import { NetnsPool } from "../test/helpers/netns.js";
import { chainAdd, chainConfs, chainDel, type Backend } from "../test/helpers/chain.js";
import { tempDir } from "../test/helpers/cni.js";
import { benchArgs, choiceArg, intArg } from "./lib/args.js";
import { privateRun, SHARED_RUN_OPTION, SHARED_RUN_USAGE } from "./lib/private-run.js";

const USAGE = `usage: node --import tsx bench/parallel.ts [--shared-run] [rounds] [width] [backend]
  rounds                 rounds, each in a fresh host namespace (default 5)
  width                  chain ADDs started at once per round (default 50)
  backend                nftables or iptables (default nftables)
${SHARED_RUN_USAGE}`;
const { values, positionals } = benchArgs({ usage: USAGE, maxPositionals: 3, options: SHARED_RUN_OPTION });
const ROUNDS = intArg(USAGE, "rounds", positionals[0], 5, 1);
const WIDTH = intArg(USAGE, "width", positionals[1], 50, 1);
const BACKEND: Backend = choiceArg(USAGE, "backend", positionals[2], ["nftables", "iptables"]) ?? "nftables";
console.log(await privateRun(values["shared-run"]));

async function round(n: number): Promise<string[]> {
  const nets = new NetnsPool();
  const dir = tempDir("parallel");
  try {
    const host = await nets.create(`ph${n}`);
    const containers = await Promise.all(Array.from({ length: WIDTH }, (_, i) => nets.create(`pc${i}`)));
    const confs = chainConfs({ name: `par${n}`, backend: BACKEND, dataDir: dir.path });
    const runs = await Promise.all(
      containers.map((c, i) =>
        chainAdd(host, confs, { containerId: `par${n}-${i}`, netns: c.path, hostPort: 30000 + i }),
      ),
    );
    const failures = runs
      .filter((r) => r.failed)
      .map((r) => `${r.failed!.plugin}: ${(r.failed!.result.stdout || r.failed!.result.stderr).trim()}`);
    await Promise.all(
      containers.map((c, i) =>
        chainDel(
          host,
          confs,
          { containerId: `par${n}-${i}`, netns: c.path, hostPort: 30000 + i },
          runs[i]!.result,
        ),
      ),
    );
    return failures;
  } finally {
    await nets.destroyAll();
    dir.remove();
  }
}

let total = 0;
for (let n = 0; n < ROUNDS; n++) {
  const failures = await round(n);
  total += failures.length;
  console.log(`round ${n + 1}/${ROUNDS}: ${failures.length} of ${WIDTH} ADDs failed`);
  for (const f of failures) console.log(`  ${f.slice(0, 300)}`);
}
console.log(`${BACKEND}: ${total} failed ADDs in ${ROUNDS} rounds of ${WIDTH}`);
process.exitCode = total > 0 ? 1 : 0;
