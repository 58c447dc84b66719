import CCurl
import Dispatch
import HTTPCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `UploadTransport` on libcurl's easy interface (decision record 0005): keep-alive connections,
/// TLS with a configurable CA file, connect and low-speed timeouts, and a send-rate cap.
///
/// Each request runs on a Dispatch thread (libcurl blocks); handles are pooled, so a connection is
/// reused by the next request and the pool never holds more handles than requests ever in flight.
package final class CurlTransport: UploadTransport {
    package struct Configuration: Sendable, Equatable {
        /// `http://host:port` or `https://host:port`, optionally with a path prefix; no trailing slash needed.
        package var baseURL: String
        /// Sent as `Authorization: Bearer <token>`; never logged.
        package var token: String
        /// PEM file with the certificate authorities to trust for `https` (nil: the system's).
        package var caFile: String?
        package var connectTimeout = Duration.seconds(10)
        /// A transfer slower than `lowSpeedBytesPerSecond` for this long is abandoned.
        package var lowSpeedTime = Duration.seconds(30)
        package var lowSpeedBytesPerSecond = 1
        /// Whole-request ceiling, whatever the speed.
        package var requestTimeout = Duration.seconds(120)
        /// Upload rate cap in bytes per second for each request (nil: unlimited).
        package var maximumSendBytesPerSecond: Int?
        /// Response bodies beyond this are cut (acknowledgements are a few hundred bytes).
        package var maximumResponseBytes = 64 * 1024

        package init(baseURL: String, token: String) {
            self.baseURL = baseURL
            self.token = token
        }
    }

    package let configuration: Configuration
    private let idleHandles = Mutex<[CurlHandle]>([])

    package init(configuration: Configuration) {
        CurlTransport.initializeLibraryOnce
        self.configuration = configuration
    }

    private static let initializeLibraryOnce: Void = {
        // Must run before any thread uses libcurl; not thread-safe itself.
        _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT))
    }()

    package func send(_ request: UploadRequest) async -> Result<UploadResponse, UploadTransportError> {
        let handle = idleHandles.withLock { $0.popLast() } ?? CurlHandle()
        let result = await withCheckedContinuation { continuation in
            DispatchQueue.global(qos: .utility).async { [configuration] in
                continuation.resume(returning: handle.perform(request, configuration: configuration))
            }
        }
        idleHandles.withLock { $0.append(handle) }
        return result
    }
}

/// One libcurl easy handle and the buffers its callbacks fill. Used by one request at a time.
private final class CurlHandle: @unchecked Sendable {
    // Only one request uses a handle at a time: it is taken out of the pool for the duration.
    private let handle: UnsafeMutableRawPointer?
    private var responseBody: [UInt8] = []
    private var responseLimit = 0
    private var retryAfter: Duration?

    init() {
        handle = curl_easy_init()
    }

    deinit {
        if let handle { curl_easy_cleanup(handle) }
    }

    func perform(
        _ request: UploadRequest,
        configuration: CurlTransport.Configuration
    ) -> Result<UploadResponse, UploadTransportError> {
        guard let handle else { return .failure(UploadTransportError("libcurl could not create a handle")) }
        curl_easy_reset(handle)
        responseBody.removeAll(keepingCapacity: true)
        responseLimit = configuration.maximumResponseBytes
        retryAfter = nil

        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        var headers: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headers) }
        for line in [
            "Content-Type: \(request.contentType)",
            "Authorization: Bearer \(configuration.token)",
            "Expect:",  // no 100-continue round trip: bodies are small and the collector answers early anyway
        ] + request.headers.map({ "\($0.name): \($0.value)" }) {
            headers = curl_slist_append(headers, line)
        }

        let url =
            configuration.baseURL.hasSuffix("/")
            ? String(configuration.baseURL.dropLast()) + request.path : configuration.baseURL + request.path
        let context = Unmanaged.passUnretained(self).toOpaque()
        let code: CURLcode = request.body.withUnsafeBytes { body in
            errorBuffer.withUnsafeMutableBufferPointer { errors in
                var setup = CURLE_OK
                func set(_ result: CURLcode) { if setup == CURLE_OK { setup = result } }
                set(ccurl_setopt_string(handle, CURLOPT_URL, url))
                set(ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
                set(ccurl_setopt_long(handle, CURLOPT_POST, 1))
                set(
                    ccurl_setopt_pointer(
                        handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: body.baseAddress)))
                set(ccurl_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
                set(ccurl_setopt_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(headers)))
                set(ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errors.baseAddress)))
                set(
                    ccurl_setopt_long(
                        handle, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(configuration.connectTimeout)))
                set(ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Self.milliseconds(configuration.requestTimeout)))
                set(ccurl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, configuration.lowSpeedBytesPerSecond))
                set(ccurl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, Self.seconds(configuration.lowSpeedTime)))
                set(ccurl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0))
                set(ccurl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https"))
                if let caFile = configuration.caFile {
                    set(ccurl_setopt_string(handle, CURLOPT_CAINFO, caFile))
                }
                if let rate = configuration.maximumSendBytesPerSecond {
                    set(ccurl_setopt_offset(handle, CURLOPT_MAX_SEND_SPEED_LARGE, curl_off_t(rate)))
                }
                set(ccurl_setopt_callback(handle, CURLOPT_WRITEFUNCTION, curlWriteBody))
                set(ccurl_setopt_pointer(handle, CURLOPT_WRITEDATA, context))
                set(ccurl_setopt_callback(handle, CURLOPT_HEADERFUNCTION, curlReadHeader))
                set(ccurl_setopt_pointer(handle, CURLOPT_HEADERDATA, context))
                guard setup == CURLE_OK else { return setup }
                return curl_easy_perform(handle)
            }
        }
        guard code == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let summary = String(cString: curl_easy_strerror(code))
            let isUntrusted = [
                CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR,
                CURLE_SSL_PINNEDPUBKEYNOTMATCH,
            ].contains(code)
            return .failure(
                UploadTransportError(
                    detail.isEmpty ? summary : "\(summary): \(detail)", isUntrustedCollector: isUntrusted,
                    isTimeout: code == CURLE_OPERATION_TIMEDOUT))
        }
        var status = 0
        _ = ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(UploadResponse(status: status, retryAfter: retryAfter, body: responseBody))
    }

    fileprivate func appendBody(_ bytes: UnsafeRawBufferPointer) {
        let room = max(0, responseLimit - responseBody.count)
        responseBody.append(contentsOf: bytes.prefix(room))
    }

    fileprivate func readHeader(_ line: UnsafeRawBufferPointer) {
        let text = String(decoding: line, as: UTF8.self)
        guard let colon = text.firstIndex(of: ":") else { return }
        let name = text[..<colon].trimmingCharacters(in: " \t")
        guard ASCIICase.equal(name, "retry-after") else { return }
        let value = text[text.index(after: colon)...].trimmingCharacters(in: " \t\r\n")
        retryAfter = RetryAfter.parse(value)
    }

    private static func milliseconds(_ duration: Duration) -> Int {
        let (seconds, attoseconds) = duration.components
        return Int(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
    }

    private static func seconds(_ duration: Duration) -> Int {
        max(1, Int(clamping: duration.components.seconds))
    }
}

private func curlWriteBody(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
) -> Int {
    guard let data, let context else { return 0 }
    let handle = Unmanaged<CurlHandle>.fromOpaque(context).takeUnretainedValue()
    handle.appendBody(UnsafeRawBufferPointer(start: data, count: size * count))
    return size * count
}

private func curlReadHeader(
    _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
) -> Int {
    guard let data, let context else { return 0 }
    let handle = Unmanaged<CurlHandle>.fromOpaque(context).takeUnretainedValue()
    handle.readHeader(UnsafeRawBufferPointer(start: data, count: size * count))
    return size * count
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        String(self.drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        self[...].trimmingCharacters(in: set)
    }
}

/// The `Retry-After` header (RFC 9110 §10.2.3). Only the delta-seconds form is honoured; an HTTP
/// date would need a trustworthy clock on the gateway, so it is ignored (the backoff still applies).
package enum RetryAfter {
    /// Seconds as a `Duration`, capped at one hour so a hostile or buggy peer cannot park the uploader.
    package static func parse(_ value: String) -> Duration? {
        guard !value.isEmpty, value.utf8.count <= 10, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let seconds = Int(value)
        else { return nil }
        return .seconds(min(seconds, 3600))
    }
}
