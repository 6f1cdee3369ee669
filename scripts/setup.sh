#!/usr/bin/env bash
# One-time setup of a fresh Debian/Ubuntu machine: the libnl runtime libraries the taskstats
# receiver loads, the Node.js the agent runs on, the npm dependencies from package-lock.json, and
# the compiled agent. Run as root (or with sudo) from the repository root.
#
# The agent's Node.js is the official binary the npm registry ships as node-linux-<arch>, pinned in
# package.json / package-lock.json and installed into node_modules (bin/taskstats-agent and the
# npm scripts use node_modules/.bin/node); the system's own node is neither used nor replaced.
# npm itself runs on that Node, so .npmrc's engine-strict checks every dependency against the Node
# it will run on.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends libnl-3-200 libnl-genl-3-200 ca-certificates >/dev/null
else
  echo "setup: no apt-get here; install libnl-3 and libnl-genl-3 with your package manager" >&2
fi
command -v npm >/dev/null || { echo "setup: npm is needed (any Node.js >= 18 with npm, e.g. Debian's nodejs + npm) to fetch the pinned Node.js" >&2; exit 1; }

case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "setup: no official Node.js binary package for $(uname -m)" >&2; exit 1 ;;
esac
pkg="node-linux-$arch"
version=$(sed -n "s/^ *\"$pkg\": *\"\\([0-9.]*\\)\".*/\\1/p" package.json | head -1)
[ -n "$version" ] || { echo "setup: package.json pins no $pkg version" >&2; exit 1; }
node_bin="node_modules/$pkg/bin/node"
if [ "$("$node_bin" --version 2>/dev/null)" != "v$version" ]; then
  # First run: fetch the pinned binary package once (integrity-checked by npm) to run npm on it.
  boot=".cache/$pkg-$version"
  if [ ! -x "$boot/package/bin/node" ]; then
    mkdir -p "$boot"
    tarball=$(cd "$boot" && npm pack --silent "$pkg@$version")
    tar -xzf "$boot/$tarball" -C "$boot" && rm -f "$boot/$tarball"
  fi
  node_bin="$boot/package/bin/node"
fi
npm_cli="$(npm root -g)/npm/bin/npm-cli.js"
[ -f "$npm_cli" ] || npm_cli=$(readlink -f "$(command -v npm)")
echo "setup: npm $(npm --version) on Node.js $("$node_bin" --version) ($pkg)"
"$node_bin" "$npm_cli" ci --no-audit --no-fund
PATH="$PWD/node_modules/.bin:$PATH" npm run build
echo "setup: done; the agent runs on $(node_modules/.bin/node --version): npm start, or bin/taskstats-agent"
