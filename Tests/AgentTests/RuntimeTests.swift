import Agent
import Checks
import Foundation
import HostFacts
import Logging
import PGNodeModel
import Shipping
import TestSupport
import Testing

@Suite("Agent runtime parts")
struct RuntimeTests {
    @Test("the kernel source gives this node's real kernel findings, with ids from the window")
    func kernelSource() async throws {
        let source = KernelDiagnosisSource(host: HostRoot("/"), nodeName: "node-x", btfOverride: nil)
        let t = Timestamp.now()
        let findings = await source.nodeFindings(window: DiagnosisWindow(start: t, end: t))
        let expected = KernelChecks.all(KernelFacts.gather(host: HostRoot("/")))
        #expect(findings.map(\.observation) == expected)
        #expect(findings.allSatisfy { $0.resource == ResourceAttributes(nodeName: "node-x") && $0.time == t })
        let again = await source.nodeFindings(window: DiagnosisWindow(start: t, end: t))
        #expect(again.map(\.id) == findings.map(\.id))
        #expect(try await source.discoverContainers().isEmpty)
    }

    @Test("JSON log lines: time, level, logger, message, then metadata; clashing keys prefixed")
    func logLine() throws {
        let line = JSONLogHandler.line(
            time: Timestamp(nanoseconds: 0), level: .warning, label: "pgnode.shipping", message: "delivery \"failed\"",
            metadata: ["reason": "http_503", "message": "clash", "ids": .array(["a", "b"])])
        #expect(line.hasSuffix("\n"))
        #expect(line.filter { $0 == "\n" }.count == 1)
        let json = try #require(try JSONParser.parse(line).objectValue)
        #expect(json.keys == ["time", "level", "logger", "message", "ids", "meta.message", "reason"])
        #expect(json["time"] == "1970-01-01T00:00:00.000Z")
        #expect(json["level"] == "warning")
        #expect(json["message"] == "delivery \"failed\"")
        #expect(json["ids"] == ["a", "b"])
    }

    @Test(
        "--listen addresses",
        arguments: [
            (":9560", "0.0.0.0:9560"), ("127.0.0.1:0", "127.0.0.1:0"), ("[::1]:80", "[::1]:80"),
            ("[::]:9560", "[::]:9560"),
        ])
    func listenAddresses(text: String, expected: String) {
        #expect(ListenAddress(text)?.description == expected)
    }

    @Test("bad --listen addresses", arguments: ["9560", "localhost:9560", "1.2.3.4:99999", "::1:80", "[::1]80", "a:b"])
    func badListenAddresses(text: String) {
        #expect(ListenAddress(text) == nil)
    }

    @Test("the stdout sink writes each finding as one NDJSON line")
    func stdoutSink() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let metrics = MetricsRegistry()
        let sink = StdoutSink(fd: fds[1], metrics: metrics)
        let resource = ResourceAttributes(nodeName: "n")
        let findings = (0..<3).map {
            Finding(
                observation: Observation(check: "c\($0)", severity: .ok, summary: "s"), resource: resource,
                windowStart: Timestamp(nanoseconds: Int64($0)), time: Timestamp(nanoseconds: 0))
        }
        sink.submit(findings)
        sink.shutdown(grace: 5)
        close(fds[1])
        let text = String(decoding: FileHandle(fileDescriptor: fds[0]).readDataToEndOfFile(), as: UTF8.self)
        close(fds[0])
        #expect(text == findings.map { $0.jsonLine + "\n" }.joined())
        #expect(metrics.value(Shipper.Metric.delivered) == 3)
    }
}

@Suite("/healthz, /readyz and /metrics", .serialized)
struct StatusServerTests {
    func curl(_ arguments: [String]) throws -> (status: String, body: String) {
        let result = try Command.run(["curl", "-s", "-m", "5", "-w", "\n%{http_code} %{content_type}"] + arguments)
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        return (String(lines.last ?? ""), lines.dropLast().joined(separator: "\n"))
    }

    @Test("health, readiness, metrics; 404, 405, oversized and silent clients")
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

        // A client that connects and says nothing holds the server for at most its 2 s timeout.
        let silent = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(silent, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        let started = Date()
        #expect(try curl(["\(base)/healthz"]).status.hasPrefix("200"))
        #expect(Date().timeIntervalSince(started) < 4)
        close(silent)

        health.markStopping()
        #expect(try curl(["\(base)/readyz"]).status.hasPrefix("503"))
    }
}
