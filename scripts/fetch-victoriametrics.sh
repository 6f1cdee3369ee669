#!/usr/bin/env bash
# Fetches VictoriaMetrics (the Debian 13 "trixie" package victoria-metrics, which accepts OTLP
# protobuf) into .cache/victoria-metrics/ for the end-to-end tests. It is a test peer only, never a
# runtime dependency of the agent.
#
# The system's apt configuration is left untouched: apt-get runs with a private one-line source
# list naming trixie, no source parts, and a private lists/cache folder under .cache/.
# Idempotent: does nothing when the binary is already there. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
dest="$root/.cache/victoria-metrics"
bin="$dest/usr/bin/victoria-metrics"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
  echo "fetch-victoriametrics: needs apt-get and dpkg (Debian/Ubuntu)" >&2
  exit 1
fi

# The Debian mirror this machine already uses (deb822 "URIs:" or one-line "deb" entries whose
# path ends in /debian); the first one wins.
mirror=""
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -r "$f" ] || continue
  mirror="$(grep -vE '^[[:space:]]*#' "$f" 2>/dev/null | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true)"
  mirror="${mirror%/}"
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ]; then
  echo "fetch-victoriametrics: no Debian mirror found in /etc/apt/sources.list*" >&2
  exit 1
fi

work="$root/.cache/victoria-metrics-apt"
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
(cd "$work" && rm -f victoria-metrics_*.deb && apt-get "${apt_opts[@]}" -qq download victoria-metrics >&2)
deb="$(ls "$work"/victoria-metrics_*.deb | head -n1)"
dpkg -x "$deb" "$dest"
if [ ! -x "$bin" ]; then
  echo "fetch-victoriametrics: $deb did not contain usr/bin/victoria-metrics" >&2
  exit 1
fi
rm -rf "$work"
echo "$bin"
