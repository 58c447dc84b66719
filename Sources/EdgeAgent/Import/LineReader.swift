import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// Splits a file descriptor's bytes into lines without holding more than one read buffer and one
/// line, so importing a file of any size takes the same memory.
///
/// Reads (which may block on a pipe or a slow disk) run on a private dispatch queue, not on the
/// cooperative thread pool. A line longer than `maximumLineBytes` is an `InputError`; the last line
/// may lack its newline; `\r\n` endings are left to the parsers, which trim trailing whitespace.
package final class LineReader {
    package let fileDescriptor: Int32
    package let maximumLineBytes: Int
    private let chunkBytes: Int
    private let queue = DispatchQueue(label: "edge-agent.line-reader")
    private let interruption: ImportInterruption?

    /// - Parameter interruption: when given, a read waiting for input ends with
    ///   `ImportInterruption.Interrupted` as soon as it is interrupted.
    package init(
        fileDescriptor: Int32, maximumLineBytes: Int, chunkBytes: Int = 1 << 20, interruption: ImportInterruption? = nil
    ) {
        self.interruption = interruption
        self.fileDescriptor = fileDescriptor
        self.maximumLineBytes = maximumLineBytes
        self.chunkBytes = max(chunkBytes, 1)
    }

    /// A failed `read(2)`.
    package struct ReadError: Error, CustomStringConvertible, Sendable {
        package var errno: Int32
        package var description: String { "read failed: \(String(cString: strerror(errno)))" }
    }

    /// Calls `body` with each line (without its `\n`) and its 1-based number.
    package func forEachLine(
        _ body: (ArraySlice<UInt8>, Int) async throws -> Void
    ) async throws {
        var pending: [UInt8] = []
        var lineNumber = 0
        while true {
            let chunk = try await readChunk()
            guard !chunk.isEmpty else { break }
            let scanFrom = pending.count
            pending.append(contentsOf: chunk)
            var lineStart = 0
            var index = scanFrom
            while let newline = pending[index...].firstIndex(of: UInt8(ascii: "\n")) {
                lineNumber += 1
                guard newline - lineStart <= maximumLineBytes else {
                    throw InputError(line: lineNumber, "the line is longer than \(maximumLineBytes) bytes")
                }
                try await body(pending[lineStart..<newline], lineNumber)
                lineStart = newline + 1
                index = lineStart
            }
            pending.removeFirst(lineStart)
            guard pending.count <= maximumLineBytes else {
                throw InputError(line: lineNumber + 1, "the line is longer than \(maximumLineBytes) bytes")
            }
        }
        if !pending.isEmpty {
            try await body(pending[...], lineNumber + 1)
        }
    }

    private func readChunk() async throws -> [UInt8] {
        let (descriptor, size) = (fileDescriptor, chunkBytes)
        let wake = interruption?.wakeDescriptor ?? -1
        let result: Result<[UInt8], any Error> = await withCheckedContinuation { continuation in
            queue.async {
                var buffer = [UInt8](repeating: 0, count: size)
                if wake >= 0 {
                    // Wait for input or for the wake pipe, whichever comes first.
                    var descriptors = [
                        pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0),
                        pollfd(fd: wake, events: Int16(POLLIN), revents: 0),
                    ]
                    while poll(&descriptors, 2, -1) < 0 && errno == EINTR {}
                    if descriptors[1].revents != 0 {
                        continuation.resume(returning: .failure(ImportInterruption.Interrupted()))
                        return
                    }
                }
                while true {
                    let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, size) }
                    if count >= 0 {
                        buffer.removeLast(size - count)
                        continuation.resume(returning: .success(buffer))
                        return
                    }
                    if errno != EINTR {
                        continuation.resume(returning: .failure(ReadError(errno: errno)))
                        return
                    }
                }
            }
        }
        return try result.get()
    }
}
