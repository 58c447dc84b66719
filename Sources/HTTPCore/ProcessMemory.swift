import CEpoll

/// The process's heap, as a server that just handled a large request sees it.
public enum ProcessMemory {
    /// Returns free heap memory to the kernel (glibc `malloc_trim(0)`).
    ///
    /// glibc keeps freed memory for reuse: after one request that needed 60 MB the process stays
    /// near that size although nothing holds the memory. A handler calls this after a request that
    /// allocated much more than usual; it costs a walk over the free lists (about a millisecond for
    /// a heap of tens of megabytes), so not after every request.
    public static func releaseFreeMemory() {
        _ = cepoll_release_free_memory()
    }

    /// Makes every allocation of at least `bytes` a mapping of its own, unmapped when freed.
    ///
    /// glibc raises this threshold (up to 32 MiB) each time a large mapped block is freed, so after
    /// the first large request the next ones are served from the heap, where fragmentation keeps
    /// them resident: measured, the second of two identical 1,000,000-reading requests left the
    /// agent at 83 MB instead of 35 MB, and `malloc_trim` could not give it back. A fixed threshold
    /// keeps large request buffers out of the heap. Process-wide; set once at start.
    public static func mapAllocations(from bytes: Int) {
        _ = cepoll_map_allocations_from(Int32(clamping: bytes))
    }
}
