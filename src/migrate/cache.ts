/**
 * The attachments runtimes recorded: libcni's result cache (`<cacheDir>/results/<network>-<id>-<if>`,
 * "cniCacheV1", written by podman's CNI backend, containerd, CRI-O, buildah and cni-nft's CLI),
 * each with the network config it was made with, its final result and its capability args.
 */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { parseResult } from "../cni/index.js";
import { parseConfList, type CacheEntry } from "../cli/libcni.js";
import type { CachedAttachment } from "./components.js";

export interface CacheRead {
  attachments: CachedAttachment[];
  /** Entries that could not be used, with why. */
  unreadable: Array<{ file: string; why: string }>;
}

/** Every cached attachment, optionally only of the given networks, sorted by network then file. */
export async function readCache(cacheDir: string, networks: readonly string[] = []): Promise<CacheRead> {
  const dir = join(cacheDir, "results");
  const out: CacheRead = { attachments: [], unreadable: [] };
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => !f.endsWith(".tmp")).sort();
  } catch {
    return out;
  }
  for (const f of files) {
    const file = join(dir, f);
    try {
      const e = JSON.parse(await readFile(file, "utf8")) as CacheEntry;
      if (e.kind !== "cniCacheV1") throw new Error(`not a cniCacheV1 entry`);
      if (networks.length && !networks.includes(e.networkName)) continue;
      const text = Buffer.from(e.config, "base64").toString("utf8");
      const isList = Array.isArray((JSON.parse(text) as { plugins?: unknown }).plugins);
      const list = parseConfList(text, isList ? `${f}.conflist` : `${f}.conf`);
      if (!e.result) throw new Error("no result cached");
      out.attachments.push({
        network: e.networkName,
        containerId: e.containerId,
        ifname: e.ifName,
        netns: e.netns ?? "",
        list,
        result: parseResult(e.result, list.cniVersion),
        capabilityArgs: e.capabilityArgs ?? {},
        cniArgs: e.cniArgs ?? [],
        file,
      });
    } catch (err) {
      out.unreadable.push({ file, why: (err as Error).message });
    }
  }
  out.attachments.sort((a, b) => (a.network < b.network ? -1 : a.network > b.network ? 1 : 0));
  return out;
}
