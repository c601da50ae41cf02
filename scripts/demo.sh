#!/usr/bin/env bash
# The main job: install what is missing, then run the demo (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run --silent build
exec node --import tsx demo/main.ts "$@"
