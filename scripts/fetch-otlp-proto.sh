#!/usr/bin/env bash
# Fetches the official OpenTelemetry protobuf definitions for Python (the Debian 13 "trixie"
# package python3-opentelemetry-proto, architecture all) into .cache/otlp-proto/, for the tests
# that decode what the agent sends with code nobody here wrote (test/support/otlp-decoder.py). A
# test peer only, never a runtime dependency of the agent. It runs on Debian 12's own
# /usr/bin/python3 with the Debian 12 packages python3-protobuf and python3-grpcio
# (.ci/run installs them).
#
# The system's apt configuration is left untouched: apt-get runs with a private one-line source
# list naming trixie, no source parts, and a private lists/cache folder under .cache/.
# Idempotent: does nothing when the package is already unpacked. Prints the PYTHONPATH to use.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
dest="$root/.cache/otlp-proto"
pythonpath="$dest/usr/lib/python3/dist-packages"

if [ -d "$pythonpath/opentelemetry/proto" ]; then
  echo "$pythonpath"
  exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
  echo "fetch-otlp-proto: needs apt-get and dpkg (Debian/Ubuntu)" >&2
  exit 1
fi

# The Debian mirror this machine already uses; the first one wins.
mirror=""
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -r "$f" ] || continue
  mirror="$(grep -vE '^[[:space:]]*#' "$f" 2>/dev/null | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)"
  mirror="${mirror%/}"
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ]; then
  echo "fetch-otlp-proto: no Debian mirror found in /etc/apt/sources.list*" >&2
  exit 1
fi

work="$root/.cache/otlp-proto-apt"
mkdir -p "$work/lists/partial" "$work/archives/partial" "$dest"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
signed=""
[ -r "$keyring" ] && signed="[signed-by=$keyring] "
echo "deb ${signed}$mirror trixie main" >"$work/sources.list"

apt_opts=(
  -o "Dir::Etc::SourceList=$work/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache::Archives=$work/archives"
  -o "Dir::Cache::pkgcache=$work/pkgcache.bin"
  -o "Dir::Cache::srcpkgcache=$work/srcpkgcache.bin"
  -o "APT::Sandbox::User=root"
)
apt-get "${apt_opts[@]}" -qq update >&2
(cd "$work" && rm -f python3-opentelemetry-proto_*.deb && apt-get "${apt_opts[@]}" -qq download python3-opentelemetry-proto >&2)
deb="$(ls "$work"/python3-opentelemetry-proto_*.deb | head -n1)"
dpkg -x "$deb" "$dest"
if [ ! -d "$pythonpath/opentelemetry/proto" ]; then
  echo "fetch-otlp-proto: $deb did not contain $pythonpath/opentelemetry/proto" >&2
  exit 1
fi
rm -rf "$work"
echo "$pythonpath"
