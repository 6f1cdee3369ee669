#!/usr/bin/env bash
# One-time setup of a fresh Debian/Ubuntu machine: the libnl runtime libraries the taskstats
# receiver loads, the npm dependencies from package-lock.json, and the compiled agent.
# Run as root (or with sudo) from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends libnl-3-200 libnl-genl-3-200 ca-certificates >/dev/null
else
  echo "setup: no apt-get here; install libnl-3 and libnl-genl-3 with your package manager" >&2
fi
npm ci --no-audit --no-fund
npm run build
