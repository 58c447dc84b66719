import Foundation

/// A fresh directory under the system temporary directory, removed when the scope ends, so tests
/// that touch the disk never share or leave files.
package func withTemporaryDirectory<T>(
    prefix: String = "edge-sync-test",
    _ body: (String) throws -> T
) throws -> T {
    let path = try makeTemporaryDirectory(prefix: prefix)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// The async form of `withTemporaryDirectory(prefix:_:)`.
package func withTemporaryDirectory<T>(
    prefix: String = "edge-sync-test",
    _ body: (String) async throws -> T
) async throws -> T {
    let path = try makeTemporaryDirectory(prefix: prefix)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

private func makeTemporaryDirectory(prefix: String) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}
