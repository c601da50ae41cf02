#!/usr/bin/env bash
# Opt-in: podman 4.3 (Debian's, unmodified, CNI backend) running a real container on cni-nft's
# plugins, with both backends (test/integration/podman.test.ts). Installs podman, runc and
# busybox-static where they are missing. Works in the root network namespace, as podman does,
# and removes everything it creates. scripts/test.sh runs it too where podman is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v busybox >/dev/null || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "podman-test: installing Debian packages: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
npm run --silent build
exec node --import tsx --test --test-reporter=spec test/integration/podman.test.ts
