// Run by Bun (test/integration/nftables-libnftables.test.ts): the same failing transactions and
// listings through the nft command and through libnftables in-process, on the namespace at
// argv[2]; prints what each exec's error looked like.
import { NFTables, NftError, commandExec, libraryExec, type NftExec } from "../../src/nftables/index.js";

const [netns = ""] = process.argv.slice(2);
const library = await libraryExec();
if (!library) throw new Error("libnftables did not load under Bun");
const execs: Record<string, NftExec> = { command: commandExec(), library };

type Case = (nft: NFTables) => Promise<unknown>;
const setUp: Case = async (nft) => {
  const tx = nft.newTransaction();
  tx.add({ kind: "table" });
  tx.add({ kind: "chain", name: "busy" });
  tx.add({ kind: "chain", name: "input", type: "filter", hook: "input", priority: "filter" });
  tx.add({ kind: "rule", chain: "input", rule: "jump busy" });
  tx.add({ kind: "map", name: "m", type: "ipv4_addr : verdict" });
  tx.add({ kind: "element", map: "m", key: ["10.0.0.1"], value: ["accept"] });
  await nft.run(tx);
};

const cases: Record<string, Case> = {
  "delete of a missing chain, third operation": (nft) =>
    nft.run(
      nft
        .newTransaction()
        .add({ kind: "chain", name: "a" })
        .add({ kind: "chain", name: "b" })
        .delete({ kind: "chain", name: "nope" }),
    ),
  "create of an existing table": (nft) => nft.run(nft.newTransaction().create({ kind: "table" })),
  "delete of a chain a rule jumps to": (nft) =>
    nft.run(nft.newTransaction().delete({ kind: "chain", name: "busy" })),
  "rule text nft cannot parse": (nft) =>
    nft.run(
      nft
        .newTransaction()
        .add({ kind: "chain", name: "x" })
        .add({ kind: "rule", chain: "x", rule: "ip saddr 10.0.0.1 frobnicate" }),
    ),
  "a conflicting element inside a batch": (nft) => {
    const tx = nft.newTransaction();
    for (let i = 2; i < 40; i++) tx.add({ kind: "element", map: "m", key: [`10.0.0.${i}`], value: ["drop"] });
    tx.add({ kind: "element", map: "m", key: ["10.0.0.1"], value: ["drop"] });
    return nft.run(tx);
  },
  "jump to a missing chain, in the second table of runAll": (nft) =>
    nft.runAll([
      nft.newTransaction().add({ kind: "chain", name: "ok" }),
      nft
        .forTable("ip", "parity2")
        .newTransaction()
        .add({ kind: "table" })
        .add({ kind: "chain", name: "c" })
        .add({ kind: "rule", chain: "c", rule: "jump gone" }),
    ]),
  "check of a failing transaction": (nft) =>
    nft.check(nft.newTransaction().delete({ kind: "set", name: "nope" })),
  "listing a missing chain": (nft) => nft.listRules("nope", { text: true }),
  "listing a missing set": (nft) => nft.listElements("set", "nope"),
  "chains of a missing table": (nft) => nft.forTable("inet", "absent").list("chains"),
  "getElements of a missing key": (nft) =>
    nft.getElements([{ kind: "element", map: "m", key: ["10.9.9.9"] }]),
  "a namespace that is gone": () =>
    new NFTables({ family: "inet", table: "parity", netns: `${netns}-gone`, exec: execs["command"]! }).list(
      "chains",
    ),
};

const out: Record<string, Record<string, unknown>> = {};
for (const [name, run] of Object.entries(cases)) {
  out[name] = {};
  for (const [label, exec] of Object.entries(execs)) {
    const nft = new NFTables({ family: "inet", table: "parity", netns, exec });
    await commandExec().run(
      ["-f", "-"],
      "add table inet parity\ndelete table inet parity\nadd table ip parity2\ndelete table ip parity2\n",
      netns,
    );
    await setUp(nft);
    const gone = name === "a namespace that is gone";
    try {
      await (gone
        ? new NFTables({ family: "inet", table: "parity", netns: `${netns}-gone`, exec }).list("chains")
        : run(nft));
      out[name][label] = { ok: true };
    } catch (e) {
      const err = e as NftError;
      out[name][label] = {
        code: err.code,
        message: err.message,
        operationIndex: err.operationIndex,
        stderr: err.stderr,
      };
    }
    out[name][`${label}Dump`] = gone ? "" : await nft.dump();
  }
}
console.log(JSON.stringify(out));
