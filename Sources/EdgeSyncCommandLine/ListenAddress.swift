/// A `--listen` value: `HOST:PORT` (IPv6 hosts in brackets, `[::1]:8086`), or `:PORT` / `PORT`
/// for loopback (`127.0.0.1`), so nothing listens beyond the machine unless asked to.
package enum ListenAddress {
    package static let loopback = "127.0.0.1"

    /// `(host, port)`, or nil when `text` is not such an address (port 0 picks a free port).
    package static func parse(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":") else {
            guard let port = Int(text), (0...65535).contains(port) else { return nil }
            return (loopback, port)
        }
        var host = String(text[..<colon])
        guard let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = loopback }
        guard !host.contains("[") && !host.contains("]") && !host.contains(" ") else { return nil }
        return (host, port)
    }
}
