#!/usr/bin/env bash
# Builds each decoder with libFuzzer and AddressSanitizer and fuzzes it for a bounded time.
# usage: Tests/Fuzz/run-fuzz.sh [seconds per harness]   (default 60)
# Harnesses: the batch decoder (seeds from the golden vectors), Prometheus remote write (seeds in
# Tests/Fuzz/seeds/remote-write/) and the text inputs: line protocol, CSV, gzip (Tests/Fuzz/seeds/inputs/). Crashes are written to Tests/Fuzz/crashes/ and fail the run.
set -euo pipefail
seconds="${1:-60}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$root/.build-fuzz"
corpus="$build/corpus"
crashes="$root/Tests/Fuzz/crashes"
mkdir -p "$build" "$corpus" "$crashes"

# Runs one harness for $seconds; libFuzzer exits non-zero on a crash, which ends the script.
run_harness() {
    local name="$1" binary="$2" corpus="$3"
    shift 3
    echo "fuzz: running $name for ${seconds}s"
    "$binary" "$corpus" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$crashes/$name-" -print_final_stats=1 "$@" 2>&1 | tail -n 25
    echo "fuzz: $name: no crash in ${seconds}s"
}

echo "fuzz: building the decoder with -sanitize=fuzzer,address"
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name EdgeSyncCodec \
    -I "$root/Sources/CZlib" -lz \
    "$root"/Sources/EdgeSyncCodec/*.swift "$root/Tests/Fuzz/DecoderFuzzer.swift" \
    -o "$build/decoder-fuzzer"

# Seed corpus: every golden frame, as a whole frame (prefix 0) and as a bare payload (prefix 1).
for hex in "$root"/Tests/EdgeSyncCodecTests/Golden/*.hex; do
    name="$(basename "$hex" .hex)"
    { printf '\x00'; xxd -r -p "$hex"; } > "$corpus/frame-$name"
    { printf '\x01'; xxd -r -p "$hex" | tail -c +15 | head -c -4; } > "$corpus/payload-$name"
done

# Integer-column seeds (prefix 2, then a little-endian count): a hand-built Huffman table
# (lengths 1, 2, 2; residuals 0, 1, -1), a single-symbol code with divisor 3, and packed blocks.
printf '\x02\x02\x00\x80\x01\x02\x21\x02\x01\x0e' > "$corpus/column-huffman"
printf '\x02\x01\x00\x80\x03\x04\x00\x00\x01\x01\x01' > "$corpus/column-single"
printf '\x02\x07\x00\x01\x0a\x02\x00\x1b\x00' > "$corpus/column-packed"

run_harness decoder "$build/decoder-fuzzer" "$corpus" -max_len=4096

echo "fuzz: building remote write decoding with -sanitize=fuzzer,address"
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name PrometheusRemoteWrite -package-name edge_sync \
    "$root"/Sources/PrometheusRemoteWrite/*.swift "$root/Tests/Fuzz/RemoteWriteFuzzer.swift" \
    -o "$build/remote-write-fuzzer"
# The committed seeds stay as they are; libFuzzer adds what it finds to the working corpus.
remote_corpus="$build/corpus-remote-write"
mkdir -p "$remote_corpus"
cp "$root"/Tests/Fuzz/seeds/remote-write/* "$remote_corpus/"
# The decoder may allocate at most its 1 MiB decoded limit at once (plus the arrays of a request);
# -malloc_limit_mb turns any larger single allocation into a failure.
run_harness remote-write "$build/remote-write-fuzzer" "$remote_corpus" -max_len=8192 -malloc_limit_mb=16

echo "fuzz: building the text inputs (line protocol, CSV, gzip) with -sanitize=fuzzer,address"
# One module: the codec (limits, gzip) and the parsers' sources, their `import EdgeSyncCodec` dropped.
inputs_src="$build/inputs-src"
rm -rf "$inputs_src" && mkdir -p "$inputs_src"
for file in "$root"/Sources/EdgeAgent/Import/{LineProtocol,LineProtocolParser,ReadingBlock,InputError,CSV}.swift \
    "$root"/Sources/EdgeAgent/Spool/IncomingReading.swift "$root"/Sources/EdgeSyncProtocol/LineProtocolSeriesKey.swift; do
    sed -e '/^import EdgeSyncCodec$/d' -e '/^import EdgeSyncProtocol$/d' "$file" > "$inputs_src/$(basename "$file")"
done
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name EdgeAgentInputs -package-name edge_sync \
    -I "$root/Sources/CZlib" -lz "$root"/Sources/EdgeSyncCodec/*.swift "$inputs_src"/*.swift \
    "$root/Tests/Fuzz/InputFuzzer.swift" -o "$build/inputs-fuzzer"
inputs_corpus="$build/corpus-inputs"
mkdir -p "$inputs_corpus"
cp "$root"/Tests/Fuzz/seeds/inputs/* "$inputs_corpus/"
run_harness inputs "$build/inputs-fuzzer" "$inputs_corpus" -max_len=4096 -malloc_limit_mb=64
