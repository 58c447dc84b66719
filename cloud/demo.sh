#!/usr/bin/env bash
# The quick start: builds edge-sync and runs `cloud-collector demo` (a collector on embedded SQLite
# plus simulated gateways, each a real edge-agent process). Arguments go to the demo, e.g.
#   bash cloud/demo.sh --gateways 5 --sensors 50 --rate 10
# Missing system libraries are installed first when it runs as root with apt-get; otherwise it
# prints the apt-get command. `bash cloud/demo.sh --check-only` does only that.
set -euo pipefail
cd "$(dirname "$0")/.."

# The C libraries the build links, by pkg-config name and the Debian package that provides them.
# Prints the Debian packages that are missing, one line, nothing when all are there.
missing_packages() {
    local missing=() pair module package
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    for pair in zlib:zlib1g-dev sqlite3:libsqlite3-dev libcurl:libcurl4-openssl-dev libpq:libpq-dev; do
        module="${pair%%:*}" package="${pair##*:}"
        if ! pkg-config --exists "$module" 2>/dev/null; then missing+=("$package"); fi
    done
    echo "${missing[*]}"
}

# Installs what is missing when it can (root with apt-get, as .ci/run does), saying so; otherwise
# prints the exact command and fails.
ensure_packages() {
    local missing
    missing="$(missing_packages)"
    [[ -z "$missing" ]] && return 0
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
        echo "demo: installing $missing (apt-get install -y $missing)" >&2
        export DEBIAN_FRONTEND=noninteractive
        # shellcheck disable=SC2086 # one word per package
        if apt-get update -qq >&2 && apt-get install -y -qq $missing >&2 && [[ -z "$(missing_packages)" ]]; then
            return 0
        fi
        echo "demo: installing $missing failed; see apt-get's messages above" >&2
        return 1
    fi
    local prefix=""
    [[ "$(id -u)" == 0 ]] || prefix="sudo "
    echo "demo: missing system libraries; install them with:" >&2
    echo "    ${prefix}apt-get install -y $missing" >&2
    return 1
}

# `--check-only`: set up the system packages (or say how) and stop, without building.
if [[ "${1:-}" == "--check-only" ]]; then
    ensure_packages
    echo "demo: system packages present" >&2
    exit 0
fi
ensure_packages || exit 1

echo "demo: building (swift build; the first build takes a few minutes)…" >&2
swift build --product edge-agent >&2
swift build --product cloud-collector >&2
exec "$(swift build --show-bin-path)/cloud-collector" demo "$@"
