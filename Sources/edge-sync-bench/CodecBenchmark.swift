import Foundation

enum CodecBenchmark: BenchmarkScenario {
    static let name = "codec"
    static let summary = "codec bytes/reading and speed on the real datasets, against zlib baselines"
    static func run(_ options: BenchmarkOptions) async throws {
        throw BenchmarkError("not yet written")
    }
}
