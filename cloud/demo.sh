#!/usr/bin/env bash
# The quick start: builds edge-sync and runs `cloud-collector demo` (a collector on embedded SQLite
# plus simulated gateways, each a real edge-agent process). Arguments go to the demo, e.g.
#   bash cloud/demo.sh --gateways 5 --sensors 50 --rate 10
set -euo pipefail
cd "$(dirname "$0")/.."

# The C libraries the build links, by pkg-config name and the Debian package that provides them.
missing=()
for pair in zlib:zlib1g-dev sqlite3:libsqlite3-dev libcurl:libcurl4-openssl-dev libpq:libpq-dev; do
    module="${pair%%:*}" package="${pair##*:}"
    if ! pkg-config --exists "$module" 2>/dev/null; then missing+=("$package"); fi
done
if ! command -v pkg-config >/dev/null; then missing=(pkg-config "${missing[@]}"); fi
if ((${#missing[@]})); then
    echo "demo: missing system libraries; install them with:" >&2
    echo "    apt-get install -y ${missing[*]}" >&2
    exit 1
fi

echo "demo: building (swift build; the first build takes a few minutes)…" >&2
swift build --product edge-agent >&2
swift build --product cloud-collector >&2
exec "$(swift build --show-bin-path)/cloud-collector" demo "$@"
