/// Process exit statuses, following BSD `sysexits.h` so scripts and systemd can tell causes apart.
package enum ExitCode: Int32, Sendable {
    case success = 0
    /// The command ran and failed (a peer refused, data was rejected).
    case failure = 1
    /// Bad usage: an unknown flag, a missing or malformed value, a bad configuration setting.
    case usage = 64
    /// Input data was malformed (a bad line in an import file).
    case dataError = 65
    /// A service the command needs is unavailable.
    case unavailable = 69
    /// A file or disk operation failed.
    case ioError = 74
    /// A temporary failure worth retrying later (disk full under the reject policy, peer throttling).
    case temporaryFailure = 75
}
