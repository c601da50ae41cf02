#!/usr/bin/env bash
# Runs the benchmarks (root: they work in throwaway network namespaces). Not part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "$(id -u)" != 0 ]; then
  echo "benchmarks need root (they create network namespaces)" >&2
  exit 1
fi
for bench in bench/*.ts; do
  echo "== $bench"
  node --expose-gc --import tsx "$bench"
done
echo "== charts"
node --import tsx bench/charts/render.ts
