import Agent
import Foundation
import HostFacts
import Logging
import PGNodeModel
import Shipping
import Sinks
import TestSupport
import Testing

@Suite("Agent runtime parts")
struct RuntimeTests {
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
