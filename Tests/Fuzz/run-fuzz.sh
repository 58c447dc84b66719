#!/usr/bin/env bash
# Builds each parser and decoder with libFuzzer and AddressSanitizer and fuzzes it for a bounded time.
# usage: Tests/Fuzz/run-fuzz.sh [seconds per harness]   (default 60; CI runs 30)
# Harnesses: the batch decoder, versions 2 and 3 (seeds from the golden vectors), Prometheus remote write (seeds in
# Tests/Fuzz/seeds/remote-write/), remote read and its matcher regex (Tests/Fuzz/seeds/remote-read/), OTLP metrics protobuf and JSON (Tests/Fuzz/seeds/otlp/), the text inputs: line protocol, CSV, gzip (Tests/Fuzz/seeds/inputs/),
# the HTTP/1.1 request parser (request head, Content-Length and chunked bodies, trailers), the MQTT
# packet decoder (broker-to-client packets, 3.1.1 and 5.0; seeds in Tests/Fuzz/seeds/mqtt-packet/), the
# NATS server-protocol parser (seeds in Tests/Fuzz/seeds/nats/), the
# collector's query parameters, timestamps and paging cursor, the JSON messages (the agent's JSON
# input, the dropped-range report, the acknowledgement), and the JSON configuration files.
# Each harness keeps its working corpus in Tests/Fuzz/corpus/<harness>/ (committed): libFuzzer adds
# what it finds there, then the corpus is minimized (-merge=1) and capped at $max_files inputs, so
# the repository stays small. Hand-written seeds (seed-*) and the inputs of fixed crashes
# (regression-*) are kept whatever the merge says. Crashes are written to Tests/Fuzz/crashes/ and
# fail the run.
set -euo pipefail
seconds="${1:-60}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$root/.build-fuzz"
corpora="$root/Tests/Fuzz/corpus"
crashes="$root/Tests/Fuzz/crashes"
max_files=250
mkdir -p "$build" "$corpora" "$crashes"
sanitize=(-O -sanitize=fuzzer,address -parse-as-library)

# The bytes of the files under $1 (not the file system's blocks).
bytes() { find "$1" -type f -printf '%s\n' | awk '{ total += $1 } END { print total + 0 }'; }

# Runs one harness for $seconds over its corpus (read and written) and any seed folders (read only),
# then minimizes the corpus. libFuzzer exits non-zero on a crash, which ends the script.
# usage: run_harness NAME BINARY "SEED_DIRS" [libFuzzer flags]
run_harness() {
    local name="$1" binary="$2" seeds="$3"
    shift 3
    local corpus="$corpora/$name"
    mkdir -p "$corpus"
    echo "fuzz: running $name for ${seconds}s"
    # shellcheck disable=SC2086 # seed folders are space-separated, without spaces of their own
    "$binary" "$corpus" $seeds -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$crashes/$name-" -print_final_stats=1 "$@" 2>&1 | tail -n 25
    echo "fuzz: $name: no crash in ${seconds}s"

    # Keep only inputs that add coverage, at most $max_files (smallest first), plus the hand-written
    # seeds (seed-*) and the inputs of fixed crashes (regression-*), which are kept whatever the merge says.
    local merged="$build/merge-$name"
    rm -rf "$merged" && mkdir -p "$merged"
    "$binary" -merge=1 "$merged" "$corpus" "$@" >"$build/merge-$name.log" 2>&1
    find "$merged" -maxdepth 1 -type f -printf '%s %f\n' | sort -n | cut -d' ' -f2- >"$build/merge-$name.list"
    find "$corpus" -maxdepth 1 -type f ! -name 'regression-*' ! -name 'seed-*' -delete
    head -n "$max_files" "$build/merge-$name.list" >"$build/merge-$name.keep"
    while read -r file; do cp "$merged/$file" "$corpus/"; done <"$build/merge-$name.keep"
    echo "fuzz: $name: corpus of $(find "$corpus" -type f | wc -l) inputs, $(bytes "$corpus") bytes"
}

echo "fuzz: building the decoder with -sanitize=fuzzer,address"
swiftc "${sanitize[@]}" -module-name EdgeSyncCodec -package-name edge_sync \
    -I "$root/Sources/CZlib" -lz \
    "$root"/Sources/EdgeSyncCodec/*.swift "$root/Tests/Fuzz/DecoderFuzzer.swift" \
    -o "$build/decoder-fuzzer"

# Seeds: every golden frame, as a whole frame (prefix 0) and as a bare payload (prefix 1).
decoder_seeds="$build/seeds-decoder"
rm -rf "$decoder_seeds" && mkdir -p "$decoder_seeds"
for hex in "$root"/Tests/EdgeSyncCodecTests/Golden/*.hex; do
    name="$(basename "$hex" .hex)"
    { printf '\x00'; xxd -r -p "$hex"; } > "$decoder_seeds/frame-$name"
    { printf '\x01'; xxd -r -p "$hex" | tail -c +15 | head -c -4; } > "$decoder_seeds/payload-$name"
done
# Version 3 frames and payloads (prefix 3: a version 3 payload; deflated ones seed only as frames).
for hex in "$root"/Tests/EdgeSyncCodecTests/Golden/v3/*.hex; do
    name="$(basename "$hex" .hex)"
    { printf '\x00'; xxd -r -p "$hex"; } > "$decoder_seeds/frame-v3-$name"
    { printf '\x03'; xxd -r -p "$hex" | tail -c +15 | head -c -4; } > "$decoder_seeds/payload-v3-$name"
    # Frame runs (prefix 4): the frame alone, and twice back to back (refused: the second repeats
    # the first's sequences, so mutations must find the contiguous case).
    { printf '\x04'; xxd -r -p "$hex"; } > "$decoder_seeds/run-v3-$name"
    { printf '\x04'; xxd -r -p "$hex"; xxd -r -p "$hex"; } > "$decoder_seeds/run-twice-v3-$name"
done

# Integer-column seeds (prefix 2, then a little-endian count): a hand-built Huffman table
# (lengths 1, 2, 2; residuals 0, 1, -1), a single-symbol code with divisor 3, and packed blocks.
printf '\x02\x02\x00\x80\x01\x02\x21\x02\x01\x0e' > "$decoder_seeds/column-huffman"
printf '\x02\x01\x00\x80\x03\x04\x00\x00\x01\x01\x01' > "$decoder_seeds/column-single"
printf '\x02\x07\x00\x01\x0a\x02\x00\x1b\x00' > "$decoder_seeds/column-packed"

run_harness decoder "$build/decoder-fuzzer" "$decoder_seeds" -max_len=4096

echo "fuzz: building remote write decoding with -sanitize=fuzzer,address"
swiftc "${sanitize[@]}" -module-name PrometheusRemoteWrite -package-name edge_sync \
    "$root"/Sources/PrometheusRemoteWrite/*.swift "$root/Tests/Fuzz/RemoteWriteFuzzer.swift" \
    -o "$build/remote-write-fuzzer"
# The decoder may allocate at most its 1 MiB decoded limit at once (plus the arrays of a request);
# -malloc_limit_mb turns any larger single allocation into a failure.
run_harness remote-write "$build/remote-write-fuzzer" "$root/Tests/Fuzz/seeds/remote-write" \
    -max_len=8192 -malloc_limit_mb=16

echo "fuzz: building remote read decoding and the matcher regex with -sanitize=fuzzer,address"
swiftc "${sanitize[@]}" -module-name PrometheusRemoteWrite -package-name edge_sync \
    "$root"/Sources/PrometheusRemoteWrite/*.swift "$root/Tests/Fuzz/RemoteReadFuzzer.swift" \
    -o "$build/remote-read-fuzzer"
run_harness remote-read "$build/remote-read-fuzzer" "$root/Tests/Fuzz/seeds/remote-read" \
    -max_len=4096 -malloc_limit_mb=64

echo "fuzz: building the OTLP metrics decoders (protobuf, JSON) with -sanitize=fuzzer,address"
otlp_src="$build/otlp-src"
rm -rf "$otlp_src" && mkdir -p "$otlp_src"
for file in "$root"/Sources/OpenTelemetryMetrics/*.swift \
    "$root"/Sources/PrometheusRemoteWrite/{ProtobufReader,ProtobufWriter,RemoteWriteError,SnappyError}.swift; do
    sed -e '/^import PrometheusRemoteWrite$/d' "$file" > "$otlp_src/$(basename "$file")"
done
swiftc "${sanitize[@]}" -module-name OpenTelemetryMetrics -package-name edge_sync "$otlp_src"/*.swift \
    "$root/Tests/Fuzz/OTLPFuzzer.swift" -o "$build/otlp-fuzzer"
run_harness otlp "$build/otlp-fuzzer" "$root/Tests/Fuzz/seeds/otlp" -max_len=16384 -malloc_limit_mb=64

# Several modules' sources compiled as one module: their imports of each other are dropped.
# usage: gather_sources DEST FILE...
gather_sources() {
    local destination="$1"
    shift
    rm -rf "$destination" && mkdir -p "$destination"
    for file in "$@"; do
        sed -e '/^import EdgeSyncCodec$/d' -e '/^import EdgeSyncProtocol$/d' -e '/^import HTTPCore$/d' \
            "$file" > "$destination/$(basename "$file")"
    done
}

echo "fuzz: building the text inputs (line protocol, CSV, gzip) with -sanitize=fuzzer,address"
gather_sources "$build/inputs-src" \
    "$root"/Sources/EdgeAgent/Import/{LineProtocol,LineProtocolParser,ReadingBlock,InputError,CSV}.swift \
    "$root"/Sources/EdgeAgent/Spool/IncomingReading.swift "$root"/Sources/EdgeSyncProtocol/LineProtocolSeriesKey.swift
swiftc "${sanitize[@]}" -module-name EdgeAgentInputs -package-name edge_sync \
    -I "$root/Sources/CZlib" -lz "$root"/Sources/EdgeSyncCodec/*.swift "$build/inputs-src"/*.swift \
    "$root/Tests/Fuzz/InputFuzzer.swift" -o "$build/inputs-fuzzer"
run_harness inputs "$build/inputs-fuzzer" "$root/Tests/Fuzz/seeds/inputs" -max_len=4096 -malloc_limit_mb=64

echo "fuzz: building the HTTP/1.1 request parser with -sanitize=fuzzer,address"
swiftc "${sanitize[@]}" -module-name HTTPCore \
    "$root"/Sources/HTTPCore/{ASCIICase,HTTPRequestParser,HTTPRequestHead,HTTPHeaders,HTTPError,HTTPStatus,HTTPQueryParameters}.swift \
    "$root/Tests/Fuzz/HTTPRequestFuzzer.swift" -o "$build/http-request-fuzzer"
# Limits are small under the harness's high-bit mode; -malloc_limit_mb catches a body buffered whole.
run_harness http-request "$build/http-request-fuzzer" "" -max_len=4096 -malloc_limit_mb=64

echo "fuzz: building the collector's query parameters with -sanitize=fuzzer,address"
# The parameter types need the HTTP core and the protocol messages around them.
gather_sources "$build/query-src" "$root"/Sources/HTTPCore/*.swift "$root"/Sources/EdgeSyncProtocol/*.swift \
    "$root"/Sources/CloudCollector/Query/{QueryParameters,ReadingFormat,ReadingQueries}.swift \
    "$root"/Sources/CloudCollector/Server/CollectorError.swift
swiftc "${sanitize[@]}" -module-name CloudCollectorQuery -package-name edge_sync -I "$root/Sources/CEpoll" \
    "$build/query-src"/*.swift "$root/Tests/Fuzz/QueryFuzzer.swift" -o "$build/query-fuzzer"
run_harness query "$build/query-fuzzer" "" -max_len=1024 -malloc_limit_mb=64

echo "fuzz: building the JSON messages (agent JSON input, dropped-range report, ack) with -sanitize=fuzzer,address"
# The JSON input's error type carries an HTTP status and wraps spool errors: HTTP core and spool
# error sources come along.
gather_sources "$build/json-src" \
    "$root"/Sources/EdgeAgent/Import/{LineProtocol,LineProtocolParser,ReadingBlock,InputError,CSV}.swift \
    "$root"/Sources/EdgeAgent/Spool/{IncomingReading,SpoolError}.swift "$root"/Sources/EdgeSyncProtocol/*.swift \
    "$root"/Sources/EdgeAgent/Inputs/{JSONReadings,InputFailure}.swift "$root"/Sources/HTTPCore/*.swift \
    "$root"/Sources/EdgeSyncSQLite/SQLiteError.swift "$root"/Sources/OpenTelemetryMetrics/OTLPResponse.swift \
    "$root"/Sources/PrometheusRemoteWrite/{ProtobufReader,ProtobufWriter,RemoteWriteError,SnappyError}.swift
# InputFailure answers OTLP requests with OTLPResponse, which writes protobuf with remote write's writer.
sed -i -e '/^import EdgeSyncSQLite$/d' -e '/^import OpenTelemetryMetrics$/d' -e '/^import PrometheusRemoteWrite$/d' \
    "$build/json-src"/*.swift
swiftc "${sanitize[@]}" -module-name EdgeAgentInputs -package-name edge_sync -I "$root/Sources/CZlib" \
    -I "$root/Sources/CEpoll" -I "$root/Sources/CSQLite" -lz -lsqlite3 "$root"/Sources/EdgeSyncCodec/*.swift \
    "$build/json-src"/*.swift "$root/Tests/Fuzz/JSONMessagesFuzzer.swift" -o "$build/json-messages-fuzzer"
run_harness json-messages "$build/json-messages-fuzzer" "" -max_len=4096 -malloc_limit_mb=64

echo "fuzz: building the MQTT packet decoder with -sanitize=fuzzer,address"
swiftc "${sanitize[@]}" -module-name EdgeAgentMQTT -package-name edge_sync \
    "$root"/Sources/EdgeAgent/Inputs/MQTT/{MQTTPacket,MQTTPacketDecoder}.swift \
    "$root/Tests/Fuzz/MQTTPacketFuzzer.swift" -o "$build/mqtt-packet-fuzzer"
# A packet is buffered whole before decoding: at most its 1 MiB limit (64 bytes in small-limit mode).
run_harness mqtt-packet "$build/mqtt-packet-fuzzer" "$root/Tests/Fuzz/seeds/mqtt-packet" -max_len=4096 -malloc_limit_mb=64

echo "fuzz: building the NATS server-protocol parser with -sanitize=fuzzer,address"
swiftc "${sanitize[@]}" -module-name NATSJetStream -package-name edge_sync \
    "$root"/Sources/NATSJetStream/{NATSServerOperation,NATSParser}.swift \
    "$root/Tests/Fuzz/NATSParserFuzzer.swift" -o "$build/nats-parser-fuzzer"
# Control lines are bounded (4 KiB) and a message is buffered whole only up to its payload limit.
run_harness nats-parser "$build/nats-parser-fuzzer" "$root/Tests/Fuzz/seeds/nats" -max_len=4096 -malloc_limit_mb=64

echo "fuzz: building the JSON configuration files with -sanitize=fuzzer,address"
swiftc "${sanitize[@]}" -module-name EdgeSyncCommandLine -package-name edge_sync \
    "$root"/Sources/EdgeSyncCommandLine/{ConfigurationFile,UsageError,ListenAddress}.swift \
    "$root/Tests/Fuzz/ConfigurationFuzzer.swift" -o "$build/configuration-fuzzer"
run_harness configuration "$build/configuration-fuzzer" "" -max_len=2048 -malloc_limit_mb=64

echo "fuzz: corpora in Tests/Fuzz/corpus: $(bytes "$corpora") bytes"
