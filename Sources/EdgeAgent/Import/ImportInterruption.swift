import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A request to stop an import at the next line boundary (SIGINT, SIGTERM), which also wakes a
/// `LineReader` blocked waiting for input, so an idle pipe cannot keep the import from stopping.
package final class ImportInterruption: Sendable {
    private let requested = Atomic<Bool>(false)
    /// A pipe whose read end becomes readable once `interrupt()` was called; -1 when none could be made.
    let wakeDescriptor: Int32
    /// The write end: one byte written here (for example by a signal handler, `write(2)` being
    /// async-signal-safe) interrupts a waiting read.
    package let wakeWriter: Int32

    package init() {
        var ends: [Int32] = [-1, -1]
        // pipe2 is not exported by Glibc's Swift overlay: set the flags with fcntl instead.
        if pipe(&ends) == 0 {
            for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
            _ = fcntl(ends[1], F_SETFL, O_NONBLOCK)
        } else {
            ends = [-1, -1]
        }
        wakeDescriptor = ends[0]
        wakeWriter = ends[1]
    }

    deinit {
        if wakeDescriptor >= 0 { close(wakeDescriptor) }
        if wakeWriter >= 0 { close(wakeWriter) }
    }

    package var isRequested: Bool { requested.load(ordering: .acquiring) }

    /// Asks the import to stop; safe to call from any thread, more than once.
    package func interrupt() {
        requested.store(true, ordering: .releasing)
        if wakeWriter >= 0 {
            var byte: UInt8 = 1
            _ = write(wakeWriter, &byte, 1)
        }
    }

    /// Thrown by `LineReader` when it was woken by `interrupt()`.
    package struct Interrupted: Error {}
}
