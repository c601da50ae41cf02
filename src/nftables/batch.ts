/**
 * Applying several transactions (on different tables or families) in one nft run: one process,
 * one atomic batch. A plugin that touches two tables (masquerade and spoof check) pays once.
 */
import { NftError, codeFromMessage } from "./errors.js";
import { execNft, type ExecOptions } from "./exec.js";
import { probeFeatures } from "./features.js";
import type { Transaction } from "./transaction.js";
import type { NftObject } from "./types.js";

const ERROR_LINE = /^\/dev\/stdin:(\d+):(\d+)(?:-\d+)?: Error: (.*)$/m;

/** Applies all transactions atomically (all or none), or checks them with `check: true`. */
export async function applyTransactions(txs: Transaction[], exec: ExecOptions, check = false): Promise<void> {
  for (const tx of txs) tx.validate();
  const live = txs.filter((tx) => tx.size > 0);
  if (live.length === 0) return;
  // Only destroy renders differently by nft version: probe only then.
  const features = live.some((tx) => tx.usesDestroy) ? await probeFeatures(exec) : undefined;
  const rendered = live.map((tx) => tx.render(features));
  const text = rendered.map((r) => r.text).join("");
  const res = await execNft([...(check ? ["--check"] : []), "-f", "-"], exec, text);
  if (res.code === 0) return;
  const m = ERROR_LINE.exec(res.stderr);
  const message = (m?.[3] ?? res.stderr.split("\n")[0] ?? "nft failed").trim();
  let where = "";
  let op: { verb: string; object: NftObject } | undefined;
  let index: number | undefined;
  if (m) {
    let line = Number(m[1]);
    for (let i = 0; i < live.length; i++) {
      const r = rendered[i]!;
      if (line <= r.lines.length) {
        index = live[i]!.operationAt(r, line, Number(m[2]));
        op = index !== undefined ? live[i]!.operations[index] : undefined;
        if (op)
          where = ` (operation ${index! + 1}: ${op.verb} ${describeObject(op.object)}${live.length > 1 ? ` in ${live[i]!.scope.family} ${live[i]!.scope.table}` : ""})`;
        break;
      }
      line -= r.lines.length;
    }
  }
  throw new NftError(codeFromMessage(message), `nft: ${message}${where}`, op as never, index, res.stderr);
}

export function describeObject(o: NftObject): string {
  switch (o.kind) {
    case "table":
      return "table";
    case "rule":
      return `rule in chain ${o.chain}${o.handle !== undefined ? ` handle ${o.handle}` : ""}`;
    case "element":
      return `element ${o.key.join(" . ")} of ${o.set ?? o.map ?? ""}`;
    default:
      return `${o.kind} ${o.name}`;
  }
}
