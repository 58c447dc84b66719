#!/usr/bin/env bash
# Size and memory of the packaged (static, stripped) binaries beside the dynamically linked release
# build, measured in one run on this machine; prints a Markdown table (Docs/performance.md).
#
#   edge/packaging/measure.sh [--seconds N]     (load phase length, default 30)
#
# Builds what is missing: `swift build -c release` (dynamic, .build) and the static build of
# edge/packaging/package.sh (.build-release-static). For each variant: a collector on a temporary
# database and an agent with its HTTP input, both on loopback port 0. Idle RSS is read 5 s after
# each is listening; then 1000 readings/s go in for N seconds (10 line-protocol requests of 100
# readings a second, uploaded as they arrive) and RSS is read at the end, with the peak (VmHWM).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=30
[[ "${1:-}" == --seconds ]] && seconds=${2:?--seconds needs a number}

static_flags=(-c release --static-swift-stdlib --disable-local-rpath --scratch-path .build-release-static
    -Xlinker -z -Xlinker relro -Xlinker -z -Xlinker now)
for product in edge-agent cloud-collector; do
    [[ -x .build/release/$product ]] || swift build -c release --product "$product" >&2
    [[ -x .build-release-static/release/$product ]] || swift build "${static_flags[@]}" --product "$product" >&2
done

work=$(mktemp -d)
pids=()
trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"' EXIT
mkdir "$work/dynamic" "$work/static"
for product in edge-agent cloud-collector; do
    cp .build/release/$product "$work/dynamic/$product"
    strip --remove-section=.comment --remove-section=.note -o "$work/static/$product" \
        .build-release-static/release/$product
    # Stripped the same way for the size column only; the dynamic build runs unstripped (the
    # symbols are not loaded, so RSS does not depend on them).
    strip --remove-section=.comment --remove-section=.note -o "$work/$product.dynamic-stripped" \
        .build/release/$product
done

mib() { awk -v kib="$1" 'BEGIN { printf "%.1f", kib / 1024 }'; }
size_mib() { awk -v bytes="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", bytes / 1048576 }'; }
rss() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }
listening() { # listening LOG PATTERN: the address in the first "event=listening PATTERN address=" line
    local deadline=$((SECONDS + 60))
    until grep -q "event=listening $2" "$1"; do
        ((SECONDS < deadline)) || {
            echo "measure.sh: no '$2' in $1" >&2
            cat "$1" >&2
            exit 1
        }
        sleep 0.2
    done
    sed -n "s/.*event=listening ${2}address=\([^ ]*\).*/\1/p" "$1" | head -1
}

declare -A result
for variant in dynamic static; do
    bin=$work/$variant
    data=$work/$variant-data
    mkdir -p "$data"
    "$bin/cloud-collector" token add --data-dir "$data/central" gw-measure >"$data.token" 2>/dev/null
    "$bin/cloud-collector" serve --data-dir "$data/central" --listen 127.0.0.1:0 2>"$data.collector.log" &
    collector=$!
    pids+=("$collector")
    collector_address=$(listening "$data.collector.log" "")
    "$bin/edge-agent" run --data-dir "$data/spool" --device gw-measure --collector "http://$collector_address" \
        --token-file "$data.token" --listen 127.0.0.1:0 2>"$data.agent.log" &
    agent=$!
    pids+=("$agent")
    agent_address=$(listening "$data.agent.log" "input=http ")
    sleep 5 # settle: the measurement is of an idle process
    result[$variant.agent.idle]=$(rss "$agent" VmRSS)
    result[$variant.collector.idle]=$(rss "$collector" VmRSS)
    start=$(date +%s)
    for ((second = 0; second < seconds; second++)); do
        for ((request = 0; request < 10; request++)); do
            awk -v base=$(((start + second) * 1000 + request * 100)) \
                'BEGIN { for (i = 0; i < 100; i++) printf "load,site=m temp=%d.25 %d000000\n", i, base + i }' |
                curl -sS -o /dev/null --data-binary @- "http://$agent_address/write?db=any"
        done
        sleep_until=$((start + second + 1))
        while (($(date +%s) < sleep_until)); do sleep 0.05; done
    done
    result[$variant.agent.load]=$(rss "$agent" VmRSS)
    result[$variant.agent.peak]=$(rss "$agent" VmHWM)
    result[$variant.collector.load]=$(rss "$collector" VmRSS)
    kill -TERM "$agent" "$collector"
    wait "$agent" "$collector" || true
    pids=()
done

echo "| | agent dynamic | agent static | collector dynamic | collector static |"
echo "|---|---|---|---|---|"
printf "| binary, unstripped (MiB) | %s | %s | %s | %s |\n" \
    "$(size_mib .build/release/edge-agent)" "$(size_mib .build-release-static/release/edge-agent)" \
    "$(size_mib .build/release/cloud-collector)" "$(size_mib .build-release-static/release/cloud-collector)"
printf "| binary, stripped (MiB) | %s | %s | %s | %s |\n" \
    "$(size_mib "$work/edge-agent.dynamic-stripped")" "$(size_mib "$work/static/edge-agent")" \
    "$(size_mib "$work/cloud-collector.dynamic-stripped")" "$(size_mib "$work/static/cloud-collector")"
printf "| Swift libraries it loads from the toolchain (MiB) | %s | 0 | %s | 0 |\n" \
    "$(ldd .build/release/edge-agent | awk '/\/usr\/lib\/swift\// { print $3 }' | xargs stat -L -c %s | awk '{ s += $1 } END { printf "%.1f", s / 1048576 }')" \
    "$(ldd .build/release/cloud-collector | awk '/\/usr\/lib\/swift\// { print $3 }' | xargs stat -L -c %s | awk '{ s += $1 } END { printf "%.1f", s / 1048576 }')"
printf "| RSS idle (MiB) | %s | %s | %s | %s |\n" \
    "$(mib "${result[dynamic.agent.idle]}")" "$(mib "${result[static.agent.idle]}")" \
    "$(mib "${result[dynamic.collector.idle]}")" "$(mib "${result[static.collector.idle]}")"
printf "| RSS after %d s at 1000 readings/s (MiB) | %s | %s | %s | %s |\n" "$seconds" \
    "$(mib "${result[dynamic.agent.load]}")" "$(mib "${result[static.agent.load]}")" \
    "$(mib "${result[dynamic.collector.load]}")" "$(mib "${result[static.collector.load]}")"
printf "| agent peak RSS, VmHWM (MiB) | %s | %s | | |\n" \
    "$(mib "${result[dynamic.agent.peak]}")" "$(mib "${result[static.agent.peak]}")"
