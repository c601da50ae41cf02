// Writes dist/bin/<plugin>: one shim per plugin name, all running dist/src/bin/main.js with node.
// Each carries the marker "cni-nft-multicall" so IPAM delegation can recognise our own binaries.
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
// The plugin names come from the multi-call binary's table (compiled by tsc before this runs).
const { PLUGINS } = await import("../dist/src/bin/plugins.js");
const names = Object.keys(PLUGINS);
mkdirSync("dist/bin", { recursive: true });
for (const name of names) {
  const file = `dist/bin/${name}`;
  writeFileSync(
    file,
    `#!/bin/sh\n# cni-nft-multicall\nCNI_NFT_PLUGIN=${name} exec node "$(dirname "$(readlink -f "$0")")/../src/bin/main.js" "$@"\n`,
  );
  chmodSync(file, 0o755);
}
// The operator CLI.
writeFileSync(
  "dist/bin/cni-nft",
  `#!/bin/sh\nexec node "$(dirname "$(readlink -f "$0")")/../src/cli/main.js" "$@"\n`,
);
chmodSync("dist/bin/cni-nft", 0o755);
