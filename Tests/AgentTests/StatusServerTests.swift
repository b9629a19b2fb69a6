import Agent
import Foundation
import OSSupport
import PGNodeModel
import Shipping
import TestSupport
import Testing

/// A raw TCP client of 127.0.0.1 on a non-blocking socket, for clients curl cannot play: one
/// that trickles its request a byte at a time, one that never finishes it, one of a hundred.
final class RawClient {
    let fd: Int32
    /// Everything received so far.
    private(set) var received: [UInt8] = []
    /// Whether the server ended the connection (end of file or reset).
    private(set) var closedByServer = false

    init(port: UInt16) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 || errno == EINPROGRESS else {
            let code = errno
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
        }
    }

    deinit { close(fd) }

    /// Waits (at most `guardSeconds`, a hang guard) until the connection is established.
    func waitConnected(guardSeconds: Double = 10) -> Bool {
        var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&entry, 1, Int32(guardSeconds * 1000)) == 1 else { return false }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        return error == 0
    }

    /// Sends what the socket takes now; false when the server has closed the connection.
    @discardableResult
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 && (errno == EPIPE || errno == ECONNRESET) { closedByServer = true }
        return n >= 0 || errno == EAGAIN
    }

    /// Reads what has arrived, without waiting; notes an end of file or a reset.
    func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !closedByServer {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                received += buffer[0..<n]
            } else if n == 0 || errno == ECONNRESET || errno == EPIPE {
                closedByServer = true
            } else {
                return
            }
        }
    }

    /// Reads until the server closes the connection, waiting at most `guardSeconds` (a hang
    /// guard: nil when the server neither answered nor closed by then).
    func readToEnd(guardSeconds: Double = 10) -> String? {
        let limit = MonotonicClock.now() + guardSeconds
        while !closedByServer {
            let left = limit - MonotonicClock.now()
            if left <= 0 { return nil }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&entry, 1, Int32(min(left, 1) * 1000) + 1)
            drain()
        }
        return String(decoding: received, as: UTF8.self)
    }
}

@Suite("/healthz, /readyz and /metrics", .serialized)
struct StatusServerTests {
    func curl(_ arguments: [String]) throws -> (status: String, body: String) {
        let result = try Command.run(["curl", "-s", "-m", "10", "-w", "\n%{http_code} %{content_type}"] + arguments)
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
    }

    func server(
        health: AgentHealth = AgentHealth(interval: 60), limits: StatusServer.Limits = StatusServer.Limits()
    ) throws -> (StatusServer, UInt16) {
        let metrics = MetricsRegistry()
        AgentMetric.declare(metrics)
        let server = StatusServer(
            address: ListenAddress("127.0.0.1:0")!, handler: StatusRoutes.handler(health: health, metrics: metrics),
            limits: limits)
        return (server, try server.start())
    }

    @Test("health, readiness, metrics; 404, 405, HEAD, oversized requests")
    func routes() throws {
        let health = AgentHealth(interval: 60)
        let metrics = MetricsRegistry()
        AgentMetric.declare(metrics)
        metrics.add(AgentMetric.findings, [("check", "shm.size"), ("severity", "warning")], 3)
        let server = StatusServer(
            address: ListenAddress("127.0.0.1:0")!, handler: StatusRoutes.handler(health: health, metrics: metrics))
        let port = try server.start()
        defer { server.stop() }
        let base = "http://127.0.0.1:\(port)"

        #expect(try curl(["\(base)/healthz"]) == ("200 text/plain; charset=utf-8", "ok\n"))
        #expect(try curl(["\(base)/readyz"]).status.hasPrefix("503"))
        health.markReady()
        #expect(try curl(["\(base)/readyz"]) == ("200 text/plain; charset=utf-8", "ready\n"))
        let scrape = try curl(["\(base)/metrics?x=1"])
        #expect(scrape.status == "200 text/plain; version=0.0.4; charset=utf-8")
        #expect(scrape.body.contains("# TYPE pgnode_findings_total counter\n"))
        #expect(scrape.body.contains("pgnode_findings_total{check=\"shm.size\",severity=\"warning\"} 3\n"))
        #expect(scrape.body.contains("pgnode_build_info{version=\"\(PGNodeVersion.current)\"} 1\n"))
        #expect(try curl(["\(base)/nope"]).status.hasPrefix("404"))
        #expect(try curl(["-X", "POST", "-d", "x", "\(base)/metrics"]).status.hasPrefix("405"))
        #expect(
            try curl(["-H", "X-Big: \(String(repeating: "a", count: 10_000))", "\(base)/healthz"]).status.hasPrefix(
                "431"))
        #expect(try curl(["-I", "\(base)/healthz"]).status.hasPrefix("200"))

        health.markStopping()
        #expect(try curl(["\(base)/readyz"]).status.hasPrefix("503"))
    }

    @Test("a request larger than the bound without the end of its headers gets 431, a garbled one 400")
    func oversizedAndGarbled() throws {
        let (server, port) = try server()
        defer { server.stop() }
        let big = try RawClient(port: port)
        #expect(big.waitConnected())
        big.send("GET /healthz HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 9000))
        let answer = try #require(big.readToEnd(), "no answer within the hang guard")
        #expect(answer.hasPrefix("HTTP/1.1 431 "), "\(answer)")

        let garbled = try RawClient(port: port)
        #expect(garbled.waitConnected())
        garbled.send("HELLO\r\n\r\n")
        let reply = try #require(garbled.readToEnd(), "no answer within the hang guard")
        #expect(reply.hasPrefix("HTTP/1.1 400 "), "\(reply)")
    }

    @Test("a request that never completes its headers is closed at the request deadline, with no answer")
    func incompleteRequestClosed() throws {
        let (server, port) = try server(limits: StatusServer.Limits(requestDeadline: 1))
        defer { server.stop() }
        let silent = try RawClient(port: port)
        let partial = try RawClient(port: port)
        #expect(silent.waitConnected() && partial.waitConnected())
        partial.send("GET /healthz HTTP/1.1\r\nHost: x\r\n")
        // Both connections end from the server's side (the guard only stops a hang).
        #expect(partial.readToEnd(guardSeconds: 30) == "")
        #expect(silent.readToEnd(guardSeconds: 30) == "")
        // And the server still answers.
        let probe = try RawClient(port: port)
        #expect(probe.waitConnected())
        probe.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        let answer = try #require(probe.readToEnd(), "no answer within the hang guard")
        #expect(answer.hasPrefix("HTTP/1.1 200 "), "\(answer)")
    }

    @Test("/healthz answers while 100 slow clients trickle a byte a second; the server closes them all")
    func slowClients() throws {
        let (server, port) = try server(limits: StatusServer.Limits(requestDeadline: 3))
        defer { server.stop() }
        let slow = try (0..<100).map { _ in try RawClient(port: port) }
        // Every slow client has begun its request, and goes on sending one byte a second.
        var next = MonotonicClock.now()
        func trickle() {
            guard MonotonicClock.now() >= next else { return }
            next = MonotonicClock.now() + 1
            for client in slow where !client.closedByServer {
                client.drain()
                if !client.closedByServer { client.send("a") }
            }
        }
        for client in slow { #expect(client.waitConnected()) }
        for client in slow { client.send("GET /healthz HTTP/1.1\r\nX-Slow: ") }

        let probe = try RawClient(port: port)
        #expect(probe.waitConnected())
        probe.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        let guardLimit = MonotonicClock.now() + 10
        while !probe.closedByServer && MonotonicClock.now() < guardLimit {
            trickle()
            var entry = pollfd(fd: probe.fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&entry, 1, 100)
            probe.drain()
        }
        let answer = String(decoding: probe.received, as: UTF8.self)
        #expect(probe.closedByServer, "/healthz gave no complete answer within the 10 s hang guard")
        #expect(answer.hasPrefix("HTTP/1.1 200 "), "\(answer)")
        #expect(answer.hasSuffix("\r\n\r\nok\n"), "\(answer)")

        // The slow clients never finish their headers: the server ends every one of them, though
        // each keeps sending (hang guard 60 s).
        let closeLimit = MonotonicClock.now() + 60
        while slow.contains(where: { !$0.closedByServer }) && MonotonicClock.now() < closeLimit {
            trickle()
            usleep(50_000)
        }
        #expect(slow.filter(\.closedByServer).count == 100)
        #expect(slow.allSatisfy { $0.received.isEmpty })
    }

    @Test("past the connection bound the oldest unfinished connection makes room: /healthz still answers")
    func connectionBound() throws {
        let (server, port) = try server(limits: StatusServer.Limits(maxConnections: 8, requestDeadline: 600))
        defer { server.stop() }
        let idle = try (0..<8).map { _ in try RawClient(port: port) }
        for client in idle { #expect(client.waitConnected()) }
        for client in idle { client.send("GET /") }
        // A ninth connection pushes out the oldest unfinished one, and is answered.
        let probe = try RawClient(port: port)
        #expect(probe.waitConnected())
        probe.send("GET /healthz HTTP/1.1\r\n\r\n")
        let answer = try #require(probe.readToEnd(), "no answer within the hang guard")
        #expect(answer.hasPrefix("HTTP/1.1 200 "), "\(answer)")
        // The request deadline is 600 s: only the bound can have closed the first one.
        #expect(idle[0].readToEnd(guardSeconds: 30) == "")
        for client in idle.dropFirst() {
            client.drain()
            #expect(!client.closedByServer)
        }
    }
}
