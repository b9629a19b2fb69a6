import Glibc
import OSSupport
import Shipping

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

/// A minimal HTTP/1.1 server for /healthz, /readyz and /metrics: GET and HEAD only, one request
/// per connection (`Connection: close`).
///
/// One thread runs an event loop over non-blocking sockets (`poll`), so connections are served
/// side by side and no client can hold the server: at most `Limits.maxConnections` are open at
/// once (past that, the oldest connection still sending its request is closed to make room for
/// the new one), each request must be complete within `Limits.requestDeadline` seconds of its
/// connection being accepted and within `Limits.requestBytes` (else it is closed without an
/// answer, or answered 431), and each answer must be taken by the client within the same
/// deadline. A client trickling bytes, or saying nothing, is closed at its deadline.
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

    /// The bounds on the server's clients.
    public struct Limits: Sendable, Equatable {
        /// Connections open at once, at most.
        public var maxConnections: Int
        /// Seconds from accepting a connection to the end of its request's headers; then again
        /// for the client to take the answer.
        public var requestDeadline: Double
        /// The largest request (request line and headers), in bytes.
        public var requestBytes: Int

        /// Limits; the defaults are the agent's.
        public init(maxConnections: Int = 128, requestDeadline: Double = 5, requestBytes: Int = 8192) {
            self.maxConnections = max(1, maxConnections)
            self.requestDeadline = requestDeadline.isFinite ? max(0.001, requestDeadline) : 5
            self.requestBytes = max(64, requestBytes)
        }
    }

    /// Answers a GET for a path (query string removed).
    public typealias Handler = @Sendable (String) -> Response

    private let address: ListenAddress
    private let handler: Handler
    /// The bounds in force.
    public let limits: Limits
    private let lock = ConditionLock()
    private var running = false
    /// The write end of the pipe that wakes the event loop for `stop()`.
    private var wakeWriter: Int32 = -1

    /// A server for `address`.
    public init(address: ListenAddress, handler: @escaping Handler, limits: Limits = Limits()) {
        self.address = address
        self.handler = handler
        self.limits = limits
    }

    /// Binds, listens and starts serving; returns the bound port.
    public func start() throws(FileError) -> UInt16 {
        let v6 = address.host.contains(":")
        let fd = socket(
            v6 ? AF_INET6 : AF_INET,
            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
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
        guard bound == 0, listen(fd, Int32(clamping: max(16, limits.maxConnections))) == 0 else {
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
        var wake: [Int32] = [-1, -1]
        guard pipe(&wake) == 0 else {
            let code = errno
            close(fd)
            throw FileError(operation: "pipe", code: code)
        }
        for end in wake {
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
        }
        lock.withLock {
            wakeWriter = wake[1]
            running = true
        }
        let loop = EventLoop(listener: fd, wake: wake[0], limits: limits, handler: handler)
        startThread(name: "pgnode-http") { [self] in
            loop.run()
            lock.withLock {
                close(wakeWriter)
                wakeWriter = -1
            }
        }
        return port
    }

    /// Stops serving: open connections are closed, the port is released.
    public func stop() {
        lock.withLock {
            guard running else { return }
            running = false
            var byte: UInt8 = 1
            _ = write(wakeWriter, &byte, 1)
        }
    }

    /// Where the end of the headers (`\r\n\r\n`) is in `bytes`, searching from `from`.
    static func headerEnd(_ bytes: [UInt8], from: Int = 0) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var i = max(0, from)
        while i <= bytes.count - 4 {
            if bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 { return i }
            i += 1
        }
        return nil
    }

    /// The answer to a complete request (its bytes up to the end of the headers), and whether it
    /// answers a HEAD.
    static func respond(to request: ArraySlice<UInt8>, handler: Handler) -> (Response, head: Bool) {
        let firstLine = request.prefix(while: { $0 != 13 && $0 != 10 })
        let parts = String(decoding: firstLine, as: UTF8.self).split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            return (Response(status: 400, body: "bad request line\n"), false)
        }
        guard parts[0] == "GET" || parts[0] == "HEAD" else {
            return (Response(status: 405, body: "only GET and HEAD\n"), false)
        }
        let path = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return (handler(String(path)), parts[0] == "HEAD")
    }

    /// The bytes sent for `response`.
    static func encode(_ response: Response, head: Bool) -> [UInt8] {
        let body = Array(response.body.utf8)
        var bytes = Array(
            ("HTTP/1.1 \(response.status) \(reason(response.status))\r\n"
                + "Content-Type: \(response.contentType)\r\nContent-Length: \(body.count)\r\n"
                + (response.status == 405 ? "Allow: GET, HEAD\r\n" : "")
                + "Connection: close\r\n\r\n").utf8)
        if !head { bytes += body }
        return bytes
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

/// The status server's event loop: the listening socket, the wake pipe and every open
/// connection in one `poll`, each connection with its own deadline. Runs on one thread.
private final class EventLoop: @unchecked Sendable {
    /// One client connection.
    struct Connection {
        enum Phase {
            /// Reading the request.
            case reading
            /// Sending the answer.
            case writing
            /// Answer sent and our side shut down: reading (and discarding) until the client
            /// closes, so that unread bytes do not turn the close into a reset that loses the answer.
            case draining
        }

        let fd: Int32
        /// Accept order: the lowest is the oldest.
        let serial: UInt64
        var phase = Phase.reading
        var deadline: Double
        var input: [UInt8] = []
        var output: [UInt8] = []
        var sent = 0
        var drained = 0
    }

    /// Bytes read and discarded after an answer, at most.
    static let drainLimit = 64 << 10

    let listener: Int32
    let wake: Int32
    let limits: StatusServer.Limits
    let handler: StatusServer.Handler
    var connections: [Connection] = []
    var serial: UInt64 = 0
    /// While the process is out of file descriptors, accepting waits until then.
    var acceptPausedUntil = 0.0
    var chunk = [UInt8](repeating: 0, count: 4096)

    init(listener: Int32, wake: Int32, limits: StatusServer.Limits, handler: @escaping StatusServer.Handler) {
        self.listener = listener
        self.wake = wake
        self.limits = limits
        self.handler = handler
    }

    func run() {
        var entries: [pollfd] = []
        serving: while true {
            var now = MonotonicClock.now()
            let accepting = now >= acceptPausedUntil
            entries.removeAll(keepingCapacity: true)
            entries.append(pollfd(fd: wake, events: Int16(POLLIN), revents: 0))
            entries.append(pollfd(fd: accepting ? listener : -1, events: Int16(POLLIN), revents: 0))
            var wakeAt = accepting ? now + 60 : acceptPausedUntil
            for connection in connections {
                let events = connection.phase == .writing ? POLLOUT : POLLIN
                entries.append(pollfd(fd: connection.fd, events: Int16(events), revents: 0))
                wakeAt = min(wakeAt, connection.deadline)
            }
            let timeout = Int32(max(0, min(60_000, ((wakeAt - now) * 1000).rounded(.up))))
            if poll(&entries, nfds_t(entries.count), timeout) < 0 {
                // Interrupted, or short of memory for a moment: try again (after a pause for the
                // latter). Anything else is a bug in the arguments: stop serving.
                if errno == EINTR { continue }
                if errno == ENOMEM || errno == EAGAIN {
                    usleep(100_000)
                    continue
                }
                break
            }
            if entries[0].revents != 0 { break }
            now = MonotonicClock.now()
            // Service the connections polled (the array is unchanged since), then expire, then accept.
            var open: [Connection] = []
            open.reserveCapacity(connections.count)
            for (index, var connection) in connections.enumerated() {
                let revents = entries[index + 2].revents
                if revents != 0 && !service(&connection, now: now) {
                    close(connection.fd)
                    continue
                }
                if now >= connection.deadline {
                    close(connection.fd)
                    continue
                }
                open.append(connection)
            }
            connections = open
            if entries[1].revents != 0 {
                if !acceptAll(now: now) { break serving }
            }
        }
        for connection in connections { close(connection.fd) }
        connections.removeAll()
        close(listener)
        close(wake)
    }

    /// Accepts every pending connection; false when the listening socket failed for good.
    func acceptAll(now: Double) -> Bool {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                switch errno {
                case EAGAIN, EWOULDBLOCK: return true
                case EINTR, ECONNABORTED, EPROTO, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP,
                    ENETUNREACH:
                    continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors or memory: give up the oldest connection, or wait a little.
                    if !dropOldest() {
                        acceptPausedUntil = now + 0.1
                        return true
                    }
                    continue
                default:
                    return false
                }
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if connections.count >= limits.maxConnections { _ = dropOldest() }
            serial &+= 1
            connections.append(Connection(fd: fd, serial: serial, deadline: now + limits.requestDeadline))
        }
    }

    /// Closes the oldest connection still sending its request (else the oldest of all); false
    /// when there is none.
    func dropOldest() -> Bool {
        let reading = connections.indices.filter { connections[$0].phase == .reading }
        let candidates = reading.isEmpty ? Array(connections.indices) : reading
        guard let oldest = candidates.min(by: { connections[$0].serial < connections[$1].serial }) else {
            return false
        }
        close(connections[oldest].fd)
        connections.remove(at: oldest)
        return true
    }

    /// Moves `connection` on after its socket became ready; false when it is done with.
    func service(_ connection: inout Connection, now: Double) -> Bool {
        switch connection.phase {
        case .reading: return read(&connection, now: now)
        case .writing: return write(&connection, now: now)
        case .draining: return drain(&connection)
        }
    }

    func read(_ connection: inout Connection, now: Double) -> Bool {
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                return errno == EAGAIN || errno == EWOULDBLOCK
            }
            if n == 0 {
                // The client stopped sending before its headers ended.
                guard !connection.input.isEmpty else { return false }
                answer(&connection, StatusServer.Response(status: 400, body: "incomplete request\n"), head: false, now)
                return write(&connection, now: now)
            }
            let searchFrom = max(0, connection.input.count - 3)
            connection.input += chunk[0..<n]
            if let end = StatusServer.headerEnd(connection.input, from: searchFrom), end + 4 <= limits.requestBytes {
                let (response, head) = StatusServer.respond(to: connection.input[..<end], handler: handler)
                answer(&connection, response, head: head, now)
                return write(&connection, now: now)
            }
            if connection.input.count > limits.requestBytes {
                answer(&connection, StatusServer.Response(status: 431, body: "request too large\n"), head: false, now)
                return write(&connection, now: now)
            }
        }
    }

    func answer(_ connection: inout Connection, _ response: StatusServer.Response, head: Bool, _ now: Double) {
        connection.input = []
        connection.output = StatusServer.encode(response, head: head)
        connection.phase = .writing
        connection.deadline = now + limits.requestDeadline
    }

    func write(_ connection: inout Connection, now: Double) -> Bool {
        while connection.sent < connection.output.count {
            let n = connection.output[connection.sent...].withUnsafeBytes {
                send(connection.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if n < 0 {
                if errno == EINTR { continue }
                return errno == EAGAIN || errno == EWOULDBLOCK
            }
            connection.sent += n
        }
        connection.output = []
        shutdown(connection.fd, Int32(SHUT_WR))
        connection.phase = .draining
        return drain(&connection)
    }

    func drain(_ connection: inout Connection) -> Bool {
        while connection.drained < Self.drainLimit {
            let n = chunk.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                return errno == EAGAIN || errno == EWOULDBLOCK
            }
            if n == 0 { return false }
            connection.drained += n
        }
        return false
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
