import CCurl
import Glibc
import PGNodeModel

/// TLS settings for the receiver.
public struct TLSOptions: Sendable, Equatable {
    /// A PEM bundle of CAs to trust instead of the system's (`--endpoint-ca`).
    public var caFile: String?
    /// A PEM client certificate (`--endpoint-cert`).
    public var certificateFile: String?
    /// The PEM private key of the client certificate (`--endpoint-key`).
    public var keyFile: String?

    /// TLS options.
    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
    }
}

/// An HTTP response.
public struct HTTPResponse: Sendable {
    /// The status code.
    public var status: Int
    /// Header fields with lowercased names, in order (the client keeps at most
    /// `CurlHTTPClient.headerLimit` of them, each at most `headerLineLimit` bytes).
    public var headers: [(name: String, value: String)]
    /// The body (truncated at the client's limit).
    public var body: [UInt8]

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first(where: { $0.name == lower })?.value
    }
}

/// A request that got no HTTP response: connection refused, DNS, TLS, or a timeout.
public struct TransportError: Error, Sendable, CustomStringConvertible {
    /// libcurl's error code.
    public var code: Int
    /// libcurl's message.
    public var message: String
    /// Whether it was a timeout (connect or whole request).
    public var isTimeout: Bool { code == Int(CURLE_OPERATION_TIMEDOUT.rawValue) }
    public var description: String { "curl error \(code): \(message)" }
}

/// Sends one HTTP request and waits for its response.
public protocol HTTPTransport: AnyObject {
    /// POSTs `body` to `url` with `headers`; `timeout` bounds the whole request in seconds.
    func post(url: String, headers: [(String, String)], body: [UInt8], timeout: Double) throws(TransportError)
        -> HTTPResponse
}

/// An HTTP client on libcurl's easy interface. One handle is reused, so connections are kept
/// alive between batches. Not thread-safe: one delivery thread owns it.
public final class CurlHTTPClient: HTTPTransport {
    private let handle: UnsafeMutableRawPointer
    private let tls: TLSOptions
    private let connectTimeout: Double
    /// The largest response body kept (Elasticsearch bulk responses for big batches included);
    /// the rest is read and dropped.
    public static let responseLimit = 8 << 20
    /// The most header fields kept from one response; later ones are dropped.
    public static let headerLimit = 100
    /// The longest header line kept, in bytes; a longer one is dropped (libcurl itself refuses
    /// lines over 100 KiB).
    public static let headerLineLimit = 8 << 10

    /// A client; `connectTimeout` is in seconds.
    public init(tls: TLSOptions = TLSOptions(), connectTimeout: Double = 5) {
        Self.globalInit
        self.handle = curl_easy_init()
        self.tls = tls
        self.connectTimeout = connectTimeout
    }

    deinit { curl_easy_cleanup(handle) }

    /// POSTFIELDS for an empty body: libcurl reads stdin when it is NULL.
    private static let emptyBody: StaticString = ""

    private static let globalInit: Void = { _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    /// What the callbacks collect during one transfer.
    private final class Collector {
        var body: [UInt8] = []
        var headers: [(name: String, value: String)] = []
    }

    public func post(url: String, headers: [(String, String)], body: [UInt8], timeout: Double) throws(TransportError)
        -> HTTPResponse
    {
        curl_easy_reset(handle)
        let collector = Collector()
        let context = Unmanaged.passUnretained(collector).toOpaque()
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for (name, value) in headers { list = curl_slist_append(list, "\(name): \(value)") }
        // curl would otherwise wait for "100 Continue" before sending large bodies.
        list = curl_slist_append(list, "Expect:")
        defer { curl_slist_free_all(list) }

        let timeoutMs = Self.milliseconds(timeout)
        let connectMs = min(timeoutMs, Self.milliseconds(connectTimeout))
        _ = pgnode_curl_setopt_string(handle, CURLOPT_URL, url)
        _ = pgnode_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = pgnode_curl_setopt_long(handle, CURLOPT_POST, 1)
        _ = pgnode_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, list)
        _ = pgnode_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, connectMs)
        _ = pgnode_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, timeoutMs)
        _ = pgnode_curl_setopt_string(handle, CURLOPT_USERAGENT, "pgnode/\(PGNodeVersion.current)")
        _ = pgnode_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        // Only HTTP and HTTPS, never file:// or others a URL could name.
        _ = pgnode_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        if let ca = tls.caFile { _ = pgnode_curl_setopt_string(handle, CURLOPT_CAINFO, ca) }
        if let cert = tls.certificateFile { _ = pgnode_curl_setopt_string(handle, CURLOPT_SSLCERT, cert) }
        if let key = tls.keyFile { _ = pgnode_curl_setopt_string(handle, CURLOPT_SSLKEY, key) }
        _ = pgnode_curl_setopt_write_callback(handle, CURLOPT_WRITEFUNCTION) { data, size, count, context in
            let collector = Unmanaged<Collector>.fromOpaque(context!).takeUnretainedValue()
            // libcurl passes size 1; a product that does not fit is refused (ends the transfer).
            let (n, overflow) = size.multipliedReportingOverflow(by: count)
            guard !overflow else { return 0 }
            if let data, collector.body.count < CurlHTTPClient.responseLimit {
                let keep = min(n, CurlHTTPClient.responseLimit - collector.body.count)
                data.withMemoryRebound(to: UInt8.self, capacity: keep) {
                    collector.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: keep))
                }
            }
            return n
        }
        _ = pgnode_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context)
        _ = pgnode_curl_setopt_write_callback(handle, CURLOPT_HEADERFUNCTION) { data, size, count, context in
            let collector = Unmanaged<Collector>.fromOpaque(context!).takeUnretainedValue()
            let (n, overflow) = size.multipliedReportingOverflow(by: count)
            guard !overflow else { return 0 }
            guard let data, n <= CurlHTTPClient.headerLineLimit else { return n }
            let line = data.withMemoryRebound(to: UInt8.self, capacity: n) {
                String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
            }
            if line.hasPrefix("HTTP/") {
                collector.headers.removeAll()  // a new response (after 1xx); keep only its headers
            } else if collector.headers.count < CurlHTTPClient.headerLimit, let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t\r\n")
                collector.headers.append((name, value))
            }
            return n
        }
        _ = pgnode_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context)

        let code: CURLcode = body.withUnsafeBytes { raw in
            _ = pgnode_curl_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count))
            _ = pgnode_curl_setopt_pointer(
                handle, CURLOPT_POSTFIELDS, raw.baseAddress ?? UnsafeRawPointer(Self.emptyBody.utf8Start))
            return curl_easy_perform(handle)
        }
        // The pointer options refer to memory that is gone after this call.
        _ = pgnode_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, nil)
        _ = pgnode_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, nil)
        _ = pgnode_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, nil)
        withExtendedLifetime(collector) {}
        guard code == CURLE_OK else {
            throw TransportError(code: Int(code.rawValue), message: String(cString: curl_easy_strerror(code)))
        }
        var status = 0
        _ = pgnode_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: collector.headers, body: collector.body)
    }
}

extension CurlHTTPClient {
    /// A timeout in whole milliseconds for libcurl: at least 1, at most a day; NaN gives 1.
    static func milliseconds(_ seconds: Double) -> Int {
        guard seconds > 0.001 else { return 1 }
        return Int(min(seconds, 86_400) * 1000)
    }
}

extension StringProtocol {
    /// The string without leading and trailing characters of `set`.
    func trimmingCharacters(in set: String) -> String {
        let scalars = Array(unicodeScalars)
        let drop = Set(set.unicodeScalars)
        var start = 0
        var end = scalars.count
        while start < end, drop.contains(scalars[start]) { start += 1 }
        while end > start, drop.contains(scalars[end - 1]) { end -= 1 }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars[start..<end])
        return String(out)
    }
}
