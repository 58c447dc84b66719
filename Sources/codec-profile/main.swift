import EdgeSyncCodec
import EdgeSyncTestSupport
import Foundation

// `codec-profile`: encodes or decodes one real dataset a fixed number of times and nothing else,
// so that an instruction counter sees only the codec. Synchronous on purpose: valgrind cannot run
// an async main (its dispatch signal thread crashes valgrind). Release build:
//
//     swift build -c release --product codec-profile
//     valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*profiledRounds*' \
//         .build/release/codec-profile --data ../shared/data --dataset plaid --batch 100000 --decode
//
// Options: `--data DIR` (default ../shared/data), `--dataset NAME` (file name before `.csv.gz` /
// `.lp.gz`, default plaid), `--batch N` (default 100,000), `--rounds N` (default 1), `--decode`
// (default: encode), `--v2`.

/// The measured part; its name is what `--toggle-collect` matches.
@inline(never)
func profiledRounds(_ rounds: Int, batches: [Batch], frames: [[UInt8]], encoder: BatchEncoder, decoding: Bool) throws -> Int {
    let decoder = BatchDecoder()
    var total = 0
    for _ in 0..<rounds {
        if decoding {
            for frame in frames { total += try decoder.decode(frame).readings.count }
        } else {
            for batch in batches { total += try encoder.encode(batch).count }
        }
    }
    return total
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("codec-profile: \(message)\n".utf8))
    exit(64)
}

let arguments = Array(CommandLine.arguments.dropFirst())
func value(_ flag: String) -> String? {
    arguments.firstIndex(of: flag).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil }
}
let directory = URL(fileURLWithPath: value("--data") ?? "../shared/data")
let datasetName = value("--dataset") ?? "plaid"
guard let file = RealDataset.codecFileNames.first(where: { $0.hasPrefix(datasetName + ".") }) else {
    fail("unknown dataset \(datasetName); one of \(RealDataset.codecFileNames.joined(separator: ", "))")
}
guard let batchSize = Int(value("--batch") ?? "100000"), batchSize > 0, let rounds = Int(value("--rounds") ?? "1"), rounds > 0 else {
    fail("--batch and --rounds need positive integers")
}
let decoding = arguments.contains("--decode")
do {
    let dataset = try RealDataset.load(directory.appendingPathComponent(file))
    let batches = dataset.batches(of: batchSize)
    let encoder = BatchEncoder(options: EncodingOptions(version: arguments.contains("--v2") ? .v2 : .v3))
    let frames = try batches.map { try encoder.encode($0) }
    let result = try profiledRounds(rounds, batches: batches, frames: frames, encoder: encoder, decoding: decoding)
    // FNV-1a over every frame: equal before and after an encoder change means equal bytes.
    var digest: UInt64 = 0xcbf2_9ce4_8422_2325
    for frame in frames {
        for byte in frame { digest = (digest ^ UInt64(byte)) &* 0x100_0000_01b3 }
    }
    print(
        "\(dataset.name): \(rounds) × \(decoding ? "decode" : "encode") of \(dataset.readings.count) readings in \(batches.count) batches (\(result)), frames FNV-1a \(String(digest, radix: 16))")
} catch {
    fail("\(error)")
}
