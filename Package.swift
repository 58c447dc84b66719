// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "edge-sync",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "EdgeSyncCodec", targets: ["EdgeSyncCodec"]),
        .executable(name: "edge-agent", targets: ["edge-agent"]),
        .executable(name: "cloud-collector", targets: ["cloud-collector"]),
    ],
    targets: [
        // System libraries from Debian, each behind a tiny shim.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // epoll, eventfd and accept4 from the C library, which the Glibc module does not export.
        .systemLibrary(name: "CEpoll"),
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "CPostgres",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),

        // The wire contract shared by the edge agent and the collector.
        .target(name: "EdgeSyncCodec", dependencies: ["CZlib"]),

        // HTTP/1.1 server core on POSIX sockets; knows nothing about sensors.
        .target(name: "HTTPCore", dependencies: ["CEpoll"]),

        // What the edge agent and the collector say to each other besides the codec frame.
        .target(name: "EdgeSyncProtocol"),
        // Prometheus text exposition, histograms and request timing for both programs' /metrics.
        .target(name: "EdgeSyncMetrics", dependencies: ["HTTPCore"]),

        // The `Logger` value every library logs through (logfmt records; the executables pick the output).
        .target(name: "EdgeSyncLogging"),

        // Argument parsing, configuration files, progress, signals and the standard-error log output
        // for both executables.
        .target(name: "EdgeSyncCommandLine", dependencies: ["EdgeSyncLogging"]),

        // Prometheus remote write 1.0 and remote read: Snappy, the WriteRequest, ReadRequest and
        // ReadResponse protobufs, and the linear-time regex of label matchers. No dependencies.
        .target(name: "PrometheusRemoteWrite"),
        // OTLP/HTTP metrics: the ExportMetricsServiceRequest protobuf and JSON (the protobuf reader is remote write's).
        .target(name: "OpenTelemetryMetrics", dependencies: ["PrometheusRemoteWrite"]),

        // A NATS client for publishing to JetStream (the collector's downstream stream), on HTTPCore's sockets.
        .target(name: "NATSJetStream", dependencies: ["HTTPCore"]),

        // A thin SQLite layer shared by the edge spool and the collector's embedded storage.
        .target(name: "EdgeSyncSQLite", dependencies: ["CSQLite"]),
        // A thin libpq layer (connections that reconnect, COPY, a small pool) for the collector's
        // PostgreSQL storage.
        .target(name: "EdgeSyncPostgres", dependencies: ["CPostgres"]),

        // The cloud collector: authenticated ingest, dedup by sequence ranges, central storage.
        .target(
            name: "CloudCollector",
            dependencies: [
                "EdgeSyncCodec", "EdgeSyncProtocol", "EdgeSyncSQLite", "EdgeSyncPostgres", "EdgeSyncMetrics",
                "EdgeSyncCommandLine", "EdgeSyncLogging", "HTTPCore", "NATSJetStream", "PrometheusRemoteWrite",
            ]
        ),
        .executableTarget(
            name: "cloud-collector",
            dependencies: ["CloudCollector", "EdgeSyncCommandLine", "EdgeSyncLogging", "EdgeSyncSQLite", "EdgeSyncPostgres"]
        ),

        // Shared by tests and benchmarks: the real datasets and fixtures. Never linked into a product
        // (only test targets, `edge-sync-bench` and `spool-torture` use it, none of them a product).
        .target(name: "EdgeSyncTestSupport", dependencies: ["EdgeSyncCodec", "CZlib", "PrometheusRemoteWrite"]),

        // The edge agent: the durable spool, the importer, the uploader (and later the inputs).
        .target(
            name: "EdgeAgent",
            dependencies: [
                "EdgeSyncCodec", "EdgeSyncProtocol", "EdgeSyncSQLite", "EdgeSyncCommandLine", "EdgeSyncLogging",
                "EdgeSyncMetrics", "HTTPCore", "CCurl", "PrometheusRemoteWrite", "OpenTelemetryMetrics",
            ]
        ),
        .executableTarget(
            name: "edge-agent",
            dependencies: ["EdgeAgent", "EdgeSyncCodec", "EdgeSyncProtocol", "EdgeSyncCommandLine", "EdgeSyncLogging"]),

        // Benchmarks (release build): `swift run -c release edge-sync-bench <scenario>`. Not a product:
        // it links the test support, which no shipped program may.
        .executableTarget(
            name: "edge-sync-bench",
            dependencies: [
                "EdgeSyncCodec", "EdgeSyncTestSupport", "HTTPCore", "CZlib", "EdgeAgent", "CloudCollector",
                "EdgeSyncSQLite", "EdgeSyncPostgres", "EdgeSyncProtocol", "PrometheusRemoteWrite",
                "OpenTelemetryMetrics", "NATSJetStream", "EdgeSyncLogging",
            ]
        ),

        // Instruction counts of the codec alone under callgrind (release build); not a product.
        .executableTarget(name: "codec-profile", dependencies: ["EdgeSyncCodec", "EdgeSyncTestSupport"]),

        // The crash tests' child: appends forever and prints each acknowledged range (SpoolCrashTests
        // SIGKILLs it). Test-only: not a product, not part of edge-agent.
        .executableTarget(name: "spool-torture", dependencies: ["EdgeAgent", "EdgeSyncCodec", "EdgeSyncCommandLine"]),

        .testTarget(
            name: "EdgeSyncCodecTests",
            dependencies: ["EdgeSyncCodec", "EdgeSyncTestSupport", "CZlib"],
            exclude: ["Golden"]
        ),
        .testTarget(name: "HTTPCoreTests", dependencies: ["HTTPCore", "EdgeSyncTestSupport"]),
        .testTarget(name: "EdgeSyncCommandLineTests", dependencies: ["EdgeSyncCommandLine", "EdgeSyncLogging"]),
        .testTarget(name: "EdgeSyncProtocolTests", dependencies: ["EdgeSyncProtocol", "EdgeSyncTestSupport"]),
        .testTarget(
            name: "EdgeAgentTests",
            dependencies: [
                "EdgeAgent", "EdgeSyncTestSupport", "EdgeSyncProtocol", "EdgeSyncSQLite", "EdgeSyncLogging", "HTTPCore",
                "PrometheusRemoteWrite", "OpenTelemetryMetrics", "edge-agent", "spool-torture",
            ]
        ),
        .testTarget(
            name: "CloudCollectorTests",
            dependencies: [
                "CloudCollector", "EdgeSyncTestSupport", "EdgeSyncProtocol", "EdgeSyncCodec", "EdgeSyncSQLite", "CZlib",
                "EdgeSyncPostgres", "EdgeSyncLogging", "HTTPCore", "cloud-collector", "PrometheusRemoteWrite",
            ]
        ),
        // Both real binaries on loopback; builds them.
        .testTarget(
            name: "EndToEndTests",
            dependencies: [
                "EdgeAgent", "EdgeSyncCodec", "EdgeSyncProtocol", "EdgeSyncSQLite", "EdgeSyncPostgres", "EdgeSyncTestSupport",
                "HTTPCore", "PrometheusRemoteWrite", "CloudCollector",
                "edge-agent",
                "cloud-collector",
            ]
        ),
        .testTarget(
            name: "PrometheusRemoteWriteTests",
            dependencies: ["PrometheusRemoteWrite", "EdgeAgent", "EdgeSyncProtocol", "EdgeSyncTestSupport"]
        ),
        .testTarget(name: "NATSJetStreamTests", dependencies: ["NATSJetStream", "HTTPCore", "EdgeSyncTestSupport"]),
        .testTarget(name: "EdgeSyncSQLiteTests", dependencies: ["EdgeSyncSQLite", "EdgeSyncTestSupport", "CSQLite"]),
    ],
    swiftLanguageModes: [.v6]
)
