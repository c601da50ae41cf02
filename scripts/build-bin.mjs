// Writes dist/bin/<plugin>: one shim per plugin name, all running dist/src/bin/main.js with node.
// Each carries the marker "cni-nft-multicall" so IPAM delegation can recognise our own binaries.
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
const names = ["bridge", "ptp", "portmap", "firewall", "tuning", "host-local", "static", "loopback"];
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
