import Shipping

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// `--listen ADDR:PORT`: `127.0.0.1:9560`, `0.0.0.0:9560`, `:9560` (every IPv4 address),
/// `[::]:9560` or `[::1]:9560`. Port 0 picks a free port (logged at start).
public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
    /// The numeric host.
    public var host: String
    /// The port.
    public var port: UInt16

    /// Parses `text`; nil when it is not ADDR:PORT with a numeric address.
    public init?(_ text: String) {
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }
        }
        if host.isEmpty { host = "0.0.0.0" }
        guard let port = UInt16(portText) else { return nil }
        var v4 = in_addr()
        var v6 = in6_addr()
        guard inet_pton(AF_INET, String(host), &v4) == 1 || inet_pton(AF_INET6, String(host), &v6) == 1 else {
            return nil
        }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A minimal HTTP/1.1 server for /healthz, /readyz and /metrics: one thread, one request per
/// connection (`Connection: close`), GET and HEAD only, requests bounded to 8 KiB and 2 seconds,
/// so a slow or hostile client can hold it for at most that long.
public final class StatusServer: @unchecked Sendable {
    /// A response.
    public struct Response: Sendable {
        /// The status code.
        public var status: Int
        /// The Content-Type.
        public var contentType: String
        /// The body.
        public var body: String

        /// A response.
        public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    /// Answers a GET for a path (query string removed).
    public typealias Handler = @Sendable (String) -> Response

    private let address: ListenAddress
    private let handler: Handler
    private let lock = ConditionLock()
    private var listener: Int32 = -1
    private var running = false
    /// The largest request accepted.
    static let requestLimit = 8192

    /// A server for `address`.
    public init(address: ListenAddress, handler: @escaping Handler) {
        self.address = address
        self.handler = handler
    }

    /// Binds, listens and starts serving; returns the bound port.
    public func start() throws(FileError) -> UInt16 {
        let v6 = address.host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FileError(operation: "socket", code: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var bound: Int32
        if v6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = address.port.bigEndian
            inet_pton(AF_INET6, address.host, &sa.sin6_addr)
            bound = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = address.port.bigEndian
            inet_pton(AF_INET, address.host, &sa.sin_addr)
            bound = withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let code = errno
            close(fd)
            throw FileError(operation: "listen on \(address)", code: code)
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        let port = withUnsafePointer(to: &storage) { pointer -> UInt16 in
            v6
                ? pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    UInt16(bigEndian: $0.pointee.sin6_port)
                }
                : pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    UInt16(bigEndian: $0.pointee.sin_port)
                }
        }
        lock.withLock {
            listener = fd
            running = true
        }
        startThread(name: "pgnode-http") { [self] in serve(fd) }
        return port
    }

    /// Stops accepting connections.
    public func stop() {
        lock.withLock {
            guard running else { return }
            running = false
            shutdown(listener, Int32(SHUT_RDWR))
        }
    }

    private func serve(_ fd: Int32) {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE {
                    if errno == EMFILE || errno == ENFILE { usleep(100_000) }
                    continue
                }
                break
            }
            if !lock.withLock({ running }) {
                close(client)
                break
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            handle(client)
            close(client)
        }
        close(fd)
    }

    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        var complete = false
        while request.count <= Self.requestLimit {
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            request += chunk[0..<n]
            if let end = Self.headerEnd(request) {
                complete = end + 4 <= Self.requestLimit
                break
            }
        }
        let response: Response
        var head = false
        if !complete {
            if request.isEmpty { return }
            response =
                request.count > Self.requestLimit
                ? Response(status: 431, body: "request too large\n")
                : Response(status: 400, body: "incomplete request\n")
        } else {
            let firstLine = request.prefix(while: { $0 != 13 && $0 != 10 })
            let parts = String(decoding: firstLine, as: UTF8.self).split(separator: " ")
            if parts.count != 3 || !parts[2].hasPrefix("HTTP/1.") {
                response = Response(status: 400, body: "bad request line\n")
            } else if parts[0] != "GET" && parts[0] != "HEAD" {
                response = Response(status: 405, body: "only GET and HEAD\n")
            } else {
                head = parts[0] == "HEAD"
                let target = parts[1]
                let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
                response = handler(String(path))
            }
        }
        let body = Array(response.body.utf8)
        var bytes = Array(
            ("HTTP/1.1 \(response.status) \(Self.reason(response.status))\r\n"
                + "Content-Type: \(response.contentType)\r\nContent-Length: \(body.count)\r\n"
                + (response.status == 405 ? "Allow: GET, HEAD\r\n" : "")
                + "Connection: close\r\n\r\n").utf8)
        if !head { bytes += body }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            offset += n
        }
        if !complete {
            // The client may still be sending; closing with unread data would reset the connection
            // and lose the answer. Read (and discard) a bounded amount first.
            shutdown(client, Int32(SHUT_WR))
            var drained = 0
            while drained < 64 << 10 {
                let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                drained += n
            }
        }
    }

    static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4)
        where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i
        }
        return nil
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 431: "Request Header Fields Too Large"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}

/// The routes the agent serves.
public enum StatusRoutes {
    /// `/healthz` (the loop is alive), `/readyz` (first diagnosis done, not shutting down),
    /// `/metrics` (Prometheus text format 0.0.4); 404 otherwise.
    public static func handler(health: AgentHealth, metrics: MetricsRegistry) -> StatusServer.Handler {
        { path in
            switch path {
            case "/healthz":
                return health.isHealthy
                    ? StatusServer.Response(status: 200, body: "ok\n")
                    : StatusServer.Response(status: 503, body: "diagnosis loop stalled\n")
            case "/readyz":
                return health.isReady
                    ? StatusServer.Response(status: 200, body: "ready\n")
                    : StatusServer.Response(status: 503, body: "not ready\n")
            case "/metrics":
                return StatusServer.Response(
                    status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics.render())
            default:
                return StatusServer.Response(status: 404, body: "not found; try /healthz, /readyz or /metrics\n")
            }
        }
    }
}
