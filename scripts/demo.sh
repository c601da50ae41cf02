#!/usr/bin/env bash
# The main job: install what is missing, then run the demo (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run --silent build
# The plugins as they ship: the compiled binary when Bun built it, else the node shims.
[ -x dist/compiled/cni-nft-plugins ] && export CNI_NFT_BIN="$PWD/dist/compiled"
exec node --import tsx demo/main.ts "$@"
