/**
 * Writes a JSON Schema file per plugin config into schemas/ (from the plugins' valibot schemas).
 * Run: node --import tsx scripts/gen-schemas.ts. Checks valibot cannot express in JSON Schema
 * (e.g. "is a CIDR") are left out; the plugins still enforce them.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { toJsonSchema } from "@valibot/to-json-schema";
import { baseNetConf, type AnySchema } from "../src/cni/index.js";
import { PLUGINS } from "../src/bin/plugins.js";

const out = join(dirname(fileURLToPath(import.meta.url)), "..", "schemas");
mkdirSync(out, { recursive: true });

async function main(): Promise<void> {
  const entries: [string, AnySchema][] = [["netconf", baseNetConf]];
  for (const [name, load] of Object.entries(PLUGINS)) {
    const mod = await load();
    entries.push([name, mod.plugin.about.config ?? baseNetConf]);
  }
  for (const [name, schema] of entries) {
    const json = {
      $schema: "http://json-schema.org/draft-07/schema#",
      ...toJsonSchema(schema, { errorMode: "ignore" }),
      $id: `https://cni-nft.dev/schemas/${name}.schema.json`,
      title:
        name === "netconf"
          ? "CNI network configuration (common keys)"
          : `cni-nft ${name} plugin configuration`,
    };
    writeFileSync(join(out, `${name}.schema.json`), JSON.stringify(json, null, 2) + "\n");
    console.log(`schemas/${name}.schema.json`);
  }
}

await main();
