#!/usr/bin/env bash
# Runs every check CI runs: install, typecheck, lint, format, unit tests, integration tests (root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== typecheck" && npx tsc -p tsconfig.json --noEmit
echo "== lint" && npx eslint . --max-warnings=0
echo "== format" && npx prettier --check . --log-level=warn
echo "== build" && npm run --silent build
mapfile -t unit < <(find test/unit -name '*.test.ts' | sort)
mapfile -t integ < <(find test/integration -name '*.test.ts' 2>/dev/null | sort)
root=$([ "$(id -u)" = 0 ] && echo yes || echo no)
if [ "$root" = no ]; then
  # Files that need no namespace say so on their first line; the rest create network namespaces.
  echo "not root: running the unit tests and the integration tests marked rootless" >&2
  mapfile -t integ < <(grep -l '^// rootless:' "${integ[@]}" /dev/null)
fi
# The integration suite runs the plugins as they ship: the compiled multi-call binary. The node
# shims (the path library users and `npm run build` without bun take) get the bridge suite too.
if [ -x dist/compiled/cni-nft-plugins ]; then
  export CNI_NFT_BIN="$PWD/dist/compiled"
  shims=(test/integration/bridge.test.ts test/integration/loopback.test.ts)
else
  shims=()
fi
echo "== tests"
node --import tsx --test --test-concurrency=2 --test-reporter=spec "${unit[@]}" "${integ[@]}"
if [ "$root" = yes ] && [ "${#shims[@]}" -gt 0 ]; then
  echo "== integration tests with the node shims (dist/bin)"
  CNI_NFT_BIN="$PWD/dist/bin" node --import tsx --test --test-concurrency=2 --test-reporter=spec "${shims[@]}"
fi
