/**
 * A whole iptables-save (with the ipset save of its sets) into the owner's own nft table: the
 * same manager calls on the nftables backend, run on the library's fake to print the script, or
 * on the kernel with --apply. Each refused rule is reported with its line and the reason.
 */
import { FakeNFTables } from "../nftables/fake.js";
import { isNetfilterError, isTranslationError } from "./errors.js";
import { createNetfilterManager } from "./create.js";
import type { NetfilterManager } from "./manager.js";
import { isKnownTable, parseSaveFile, type SaveFile } from "./save-file.js";
import { isBuiltin, type IpVersion } from "./types.js";

export interface Refusal {
  line: number;
  /** The input line's content (`-A CHAIN rule`, `create set ...`, `*table`). */
  text: string;
  /** The unsupported part, when the translator named one. */
  part?: string;
  reason: string;
  nftWay?: string;
}

export interface FileTranslation {
  family: IpVersion;
  owner: string;
  /** An nft script that replaces the owner's table atomically. */
  script: string;
  refused: Refusal[];
  rules: number;
  sets: number;
}

/** Feeds a parsed save file to a manager; returns what it refused. */
export function loadSaveFile(m: NetfilterManager, file: SaveFile): Refusal[] {
  const refused: Refusal[] = [];
  const f = file.family;
  for (const s of file.sets) {
    if (s.family !== f) continue;
    if (!s.type) {
      refused.push({
        line: s.line,
        text: `create ${s.name} ${s.typeText}`,
        reason: `ipset type ${s.typeText} is not translated (hash:ip, hash:net, hash:ip,port, hash:net,iface are)`,
      });
      continue;
    }
    try {
      m.setMembers(s.name, f, s.members, s.type);
    } catch (e) {
      refused.push({ line: s.line, text: `create ${s.name} ${s.typeText}`, reason: (e as Error).message });
    }
  }
  for (const t of file.tables) {
    if (!isKnownTable(t.name)) {
      refused.push({
        line: t.line,
        text: `*${t.name}`,
        reason: `the ${t.name} table is not translated (filter, nat, mangle, raw are)`,
      });
      continue;
    }
    const table = m.tables(f)[t.name];
    for (const c of t.chains) {
      if (isBuiltin(t.name, c.name)) {
        if (c.policy === "DROP") table.setPolicy(c.name, "DROP");
      } else table.addChain(c.name);
    }
    for (const r of t.rules) {
      try {
        table.addRule(r.chain, r.rule);
      } catch (e) {
        if (!isTranslationError(e) && !isNetfilterError(e)) throw e;
        const refusal: Refusal = {
          line: r.line,
          text: `-A ${r.chain} ${r.rule}`,
          reason: isTranslationError(e) ? e.reason : e.message,
        };
        if (isTranslationError(e) && e.part) refusal.part = e.part;
        if (isTranslationError(e) && e.nftWay) refusal.nftWay = e.nftWay;
        refused.push(refusal);
      }
    }
  }
  return refused.sort((a, b) => a.line - b.line);
}

export async function translateSaveFile(text: string, owner: string): Promise<FileTranslation> {
  const file = parseSaveFile(text);
  const family = file.family;
  const fake = new FakeNFTables({ family: family === 4 ? "ip" : "ip6", table: owner });
  const m = createNetfilterManager({
    owner,
    backend: "nftables",
    families: [family],
    nft: fake,
  });
  const refused = loadSaveFile(m, file);
  await m.apply();
  const where = `${fake.family} ${owner}`;
  const dump = await fake.dump().catch(() => `add table ${where}\n`);
  const script = `# nft -f this file: replaces table ${where} atomically\nadd table ${where}\ndelete table ${where}\n${dump}`;
  return {
    family,
    owner,
    script,
    refused,
    rules:
      file.tables.reduce((n, t) => n + t.rules.length, 0) -
      refused.filter((r) => r.text.startsWith("-A ")).length,
    sets: file.sets.filter((s) => s.family === family && s.type).length,
  };
}
