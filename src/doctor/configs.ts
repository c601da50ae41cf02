/** The network configs doctor reads (NETCONFPATH): every list that parses, in file order. */
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { parseConfList, type NetworkConfigList } from "../cli/libcni.js";

export async function networkConfigs(confDir: string): Promise<NetworkConfigList[]> {
  const files = (await readdir(confDir).catch(() => [] as string[])).filter((f) =>
    /\.(conflist|conf|json)$/.test(f),
  );
  const out: NetworkConfigList[] = [];
  for (const f of files.sort()) {
    try {
      out.push(parseConfList(await readFile(join(confDir, f), "utf8"), join(confDir, f)));
    } catch {
      // A config a runtime cannot read either: not doctor's finding to make.
    }
  }
  return out;
}
