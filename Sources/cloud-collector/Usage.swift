import EdgeSyncCommandLine
import Foundation

let usage = """
    usage: cloud-collector serve (--data-dir DIR | --database postgres://…) [--listen HOST:PORT] [--config FILE]
           cloud-collector token add (--data-dir DIR | --database URL) DEVICE     (prints only the new token)
           cloud-collector token list (--data-dir DIR | --database URL)
           cloud-collector token revoke (--data-dir DIR | --database URL) DEVICE
           cloud-collector config check FILE [--data-dir DIR] [--listen HOST:PORT]
           cloud-collector demo [--gateways N] [--sensors N] [--rate HZ] [--listen HOST:PORT] [--keep]
                                 (a collector and simulated gateways on this machine; Ctrl-C stops)

    """

/// Writes text (messages, progress lines) to standard error; log records go through `collectorLogger`.
func standardError(_ text: String) {
    StandardError.write(text)
}
