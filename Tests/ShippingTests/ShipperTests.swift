import Foundation
import PGNodeModel
import TestSupport
import Testing

@testable import Shipping

/// Delivery through libcurl to a receiver on 127.0.0.1, with faults.
@Suite("Shipper against a local receiver", .serialized)
struct ShipperTests {
    /// A shipper with fast retries, its spool in `spoolDir`.
    func shipper(
        url: String, format: EndpointFormat = .ndjson, spoolDir: String, logs: LogCapture = LogCapture(),
        tokenFile: String? = nil, requestTimeout: Double = 5, batchMaxFindings: Int = 500, batchMaxBytes: Int = 1 << 20,
        queueCapacity: Int = 10_000, maxRetryAfter: Double = RetryAfter.defaultMaximum, spoolReader: SpoolReader? = nil,
        headers: [EndpointHeader] = [], start: Bool = true
    ) throws -> (Shipper, MetricsRegistry) {
        let metrics = MetricsRegistry()
        var configuration = ShipperConfiguration(
            url: format.resolvedURL(url), format: format, index: "pgnode-test", gzip: true, tokenFile: tokenFile,
            requestTimeout: requestTimeout, batchMaxFindings: batchMaxFindings, batchMaxBytes: batchMaxBytes,
            batchWait: 0.05, queueCapacity: queueCapacity, backoff: Backoff(initial: 0.1, maximum: 0.4),
            maxRetryAfter: maxRetryAfter)
        configuration.headers = headers
        let shipper = Shipper(
            configuration: configuration,
            transport: CurlHTTPClient(connectTimeout: 1),
            spool: try Spool(directory: spoolDir, maxBytes: 64 << 20, reader: spoolReader ?? .fileSystem),
            deadLetter: DeadLetterFile(path: "\(spoolDir)/dead-letter.ndjson"), metrics: metrics, logger: logs.logger)
        if start { shipper.start() }
        return (shipper, metrics)
    }

    /// The finding ids a request carried, in order, read from its body per format.
    static func ids(_ request: Receiver.Request, _ format: EndpointFormat) throws -> [String] {
        switch format {
        case .ndjson:
            return try request.body.split(separator: "\n").map {
                try JSONParser.parse(String($0))["id"]?.stringValue ?? ""
            }
        case .elasticsearch:
            return try request.body.split(separator: "\n").enumerated().filter { $0.offset % 2 == 0 }.map {
                try JSONParser.parse(String($0.element))["create"]?["_id"]?.stringValue ?? ""
            }
        case .loki:
            let streams = try JSONParser.parse(request.body)["streams"]?.arrayValue ?? []
            return try streams.flatMap { stream in
                try (stream["values"]?.arrayValue ?? []).map {
                    try JSONParser.parse($0.arrayValue?[1].stringValue ?? "")["id"]?.stringValue ?? ""
                }
            }
        case .otlp:
            let resources = try JSONParser.parse(request.body)["resourceLogs"]?.arrayValue ?? []
            return resources.flatMap { resource in
                (resource["scopeLogs"]?.arrayValue ?? []).flatMap { scope in
                    (scope["logRecords"]?.arrayValue ?? []).map { record in
                        record["attributes"]?.arrayValue?.first(where: { $0["key"] == "pgnode.finding.id" })?["value"]?[
                            "stringValue"]?.stringValue ?? ""
                    }
                }
            }
        }
    }

    /// The waits the shipper computed before each retry, in seconds, from its log.
    static func retryDelays(_ logs: LogCapture) -> [Double] {
        logs.all.filter { $0.contains("delivery failed; will retry") }.compactMap { line in
            guard let range = line.range(of: "retry_in_s=") else { return nil }
            return Double(line[range.upperBound...].prefix { $0 != " " })
        }
    }

    static func deliveredIDs(_ requests: [Receiver.Request], _ format: EndpointFormat) -> [String] {
        requests.filter { $0.status.hasPrefix("2") }.flatMap { (try? ids($0, format)) ?? [] }
    }

    @Test(
        "each format arrives gzip-encoded at its API path, in its documented shape, every finding once",
        arguments: EndpointFormat.allCases)
    func formats(format: EndpointFormat) throws {
        let receiver = try Receiver(mode: format.rawValue)
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let (shipper, metrics) = try shipper(url: receiver.url(), format: format, spoolDir: spoolDir)
        let findings = Sample.many(7)
        shipper.submit(findings)
        shipper.shutdown(grace: 10)
        let requests = receiver.requests()
        #expect(requests.count == 1)
        let request = try #require(requests.first)
        #expect(request.gzip)
        #expect(request.headers["content-encoding"] == "gzip")
        #expect(request.path == (format.defaultPath ?? "/"))
        #expect(request.headers["content-type"] == format.encoder(index: "x").contentType)
        #expect(request.headers["user-agent"] == "pgnode/\(PGNodeVersion.current)")
        #expect(try Self.ids(request, format).sorted() == findings.map(\.id).sorted())
        switch format {
        case .loki:
            let body = try JSONParser.parse(request.body)
            for stream in body["streams"]?.arrayValue ?? [] {
                #expect(
                    stream["stream"]?.objectValue?.keys == [
                        "service_name", "node", "namespace", "pod", "check", "severity",
                    ])
                for value in stream["values"]?.arrayValue ?? [] {
                    #expect(value.arrayValue?.count == 2)
                    #expect(Int64(value.arrayValue?[0].stringValue ?? "") != nil)
                }
            }
        case .elasticsearch:
            let lines = request.body.split(separator: "\n")
            #expect(lines.count == 14)
            for pair in stride(from: 0, to: lines.count, by: 2) {
                let action = try JSONParser.parse(String(lines[pair]))
                let source = try JSONParser.parse(String(lines[pair + 1]))
                #expect(action["create"]?["_index"] == "pgnode-test")
                #expect(action["create"]?["_id"] == source["id"])
                #expect(source["@timestamp"] == source["time"])
            }
        case .otlp:
            let body = try JSONParser.parse(request.body)
            let resources = try #require(body["resourceLogs"]?.arrayValue)
            #expect(resources.count == 3)  // three containers
            for resource in resources {
                #expect(resource["resource"]?["attributes"]?.arrayValue?.isEmpty == false)
                let logs = resource["scopeLogs"]?.arrayValue?.first?["logRecords"]?.arrayValue ?? []
                #expect(!logs.isEmpty)
                for record in logs {
                    #expect(record["timeUnixNano"]?.stringValue.flatMap { Int64($0) } != nil)
                    #expect([9, 10, 13, 17].contains(record["severityNumber"]?.intValue ?? 0))
                }
            }
        case .ndjson:
            #expect(request.body == findings.map { $0.jsonLine + "\n" }.joined())
        }
        #expect(metrics.value(Shipper.Metric.delivered) == 7)
        #expect(metrics.value(Shipper.Metric.deliveries) == 1)
        #expect(metrics.value(Shipper.Metric.spoolFindings) == 0)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: spoolDir).filter { $0.hasPrefix("segment-") }.isEmpty)
    }

    @Test("receiver down for a while, then back: every finding delivered once, in order")
    func downThenBack() throws {
        let port = Receiver.freePort()
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let (shipper, metrics) = try shipper(
            url: "http://127.0.0.1:\(port)", spoolDir: spoolDir, batchMaxFindings: 15)
        var submitted: [Finding] = []
        for round in 0..<4 {
            let batch = Sample.many(20, start: Int64(round * 100))
            submitted += batch
            shipper.submit(batch)
            usleep(200_000)
        }
        for _ in 0..<200
        where metrics.total(Shipper.Metric.failures) < 1 || metrics.value(Shipper.Metric.spoolFindings) < 80 {
            usleep(50_000)
        }
        #expect(metrics.total(Shipper.Metric.failures) >= 1)
        #expect(metrics.value(Shipper.Metric.spoolFindings) == 80)
        let receiver = try Receiver(mode: "ndjson", port: port)
        let requests = receiver.wait { Self.deliveredIDs($0, .ndjson).count >= 80 }
        let delivered = Self.deliveredIDs(requests, .ndjson)
        #expect(delivered == submitted.map(\.id))  // none lost, none duplicated, order kept
        shipper.shutdown(grace: 2)
        #expect(metrics.value(Shipper.Metric.delivered) == 80)
        #expect(metrics.value(Shipper.Metric.failures, [("reason", "connection")]) >= 1)
        #expect(metrics.value(Shipper.Metric.spoolFindings) == 0)
    }

    @Test("5xx answers are retried until accepted")
    func serverErrors() throws {
        let receiver = try Receiver(mode: "ndjson", options: ["--fail-first", "3", "--fail-status", "503"])
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let (shipper, metrics) = try shipper(url: receiver.url(), spoolDir: spoolDir)
        let findings = Sample.many(5)
        shipper.submit(findings)
        let requests = receiver.wait { $0.contains { $0.status == "200" } }
        shipper.shutdown(grace: 2)
        #expect(requests.map(\.status) == ["503", "503", "503", "200"])
        #expect(Self.deliveredIDs(requests, .ndjson) == findings.map(\.id))
        #expect(metrics.value(Shipper.Metric.retries) == 3)
        #expect(metrics.value(Shipper.Metric.failures, [("reason", "http_503")]) == 3)
    }

    @Test("429 with Retry-After: the next attempt is scheduled as far ahead as the receiver asked")
    func tooManyRequests() throws {
        let receiver = try Receiver(
            mode: "ndjson", options: ["--fail-first", "1", "--fail-status", "429", "--retry-after", "2"])
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let logs = LogCapture()
        let (shipper, metrics) = try shipper(url: receiver.url(), spoolDir: spoolDir, logs: logs)
        shipper.submit(Sample.many(3))
        let requests = receiver.wait { $0.count >= 2 }
        shipper.shutdown(grace: 2)
        #expect(requests.map(\.status) == ["429", "200"])
        #expect(Self.retryDelays(logs) == [2])  // backoff alone would have given 0.05–0.1 s
        #expect(metrics.value(Shipper.Metric.failures, [("reason", "http_429")]) == 1)
    }

    @Test("503 with Retry-After as an HTTP date: honoured too")
    func retryAfterDate() throws {
        let receiver = try Receiver(
            mode: "ndjson", options: ["--fail-first", "1", "--fail-status", "503", "--retry-after-date", "3"])
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let logs = LogCapture()
        let (shipper, _) = try shipper(url: receiver.url(), spoolDir: spoolDir, logs: logs)
        shipper.submit(Sample.many(2))
        let requests = receiver.wait { $0.count >= 2 }
        shipper.shutdown(grace: 2)
        #expect(requests.map(\.status) == ["503", "200"])
        // An HTTP date has whole seconds: 3 s ahead of the answer is 2 to 3 s after it (less the
        // moments between the receiver's clock and the shipper's), far above the backoff's 0.1 s.
        let delays = Self.retryDelays(logs)
        #expect(delays.count == 1)
        #expect(delays.allSatisfy { $0 > 1 && $0 <= 3 })
    }

    @Test(
        "503 with an absurd Retry-After: no trap, and the retry is scheduled no further than the maximum",
        arguments: [
            "Fri, 31 Dec 9999 23:59:59 GMT", "Sat, 01 Jan 2263 00:00:00 GMT", "Friday, 31-Dec-9999 23:59:59 GMT",
            "Thu Jan  1 00:00:00 9999", "99999999999999999999",
        ])
    func absurdRetryAfter(value: String) throws {
        let receiver = try Receiver(
            mode: "ndjson", options: ["--fail-first", "1", "--fail-status", "503", "--retry-after", value])
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let logs = LogCapture()
        let (shipper, metrics) = try shipper(url: receiver.url(), spoolDir: spoolDir, logs: logs)
        shipper.submit(Sample.many(2))
        receiver.wait { $0.count >= 1 }
        for _ in 0..<200 where Self.retryDelays(logs).isEmpty { usleep(20_000) }
        shipper.shutdown(grace: 0.2)
        #expect(receiver.requests().map(\.status) == ["503"])
        #expect(Self.retryDelays(logs) == [RetryAfter.defaultMaximum])
        #expect(metrics.value(Shipper.Metric.spoolFindings) == 2)  // kept for the next run, not lost
    }

    @Test("an absurd Retry-After under a short maximum: the batch is retried after the maximum and delivered")
    func absurdRetryAfterShortMaximum() throws {
        let receiver = try Receiver(
            mode: "ndjson",
            options: ["--fail-first", "1", "--fail-status", "503", "--retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"])
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let logs = LogCapture()
        let (shipper, metrics) = try shipper(url: receiver.url(), spoolDir: spoolDir, logs: logs, maxRetryAfter: 0.3)
        let findings = Sample.many(2)
        shipper.submit(findings)
        let requests = receiver.wait { $0.contains { $0.status == "200" } }
        shipper.shutdown(grace: 2)
        #expect(requests.map(\.status) == ["503", "200"])
        #expect(Self.retryDelays(logs) == [0.3])
        #expect(Self.deliveredIDs(requests, .ndjson) == findings.map(\.id))
        #expect(metrics.value(Shipper.Metric.spoolFindings) == 0)
    }

    @Test("a receiver that hangs: the request times out and is retried")
    func hangingReceiver() throws {
        let receiver = try Receiver(mode: "ndjson", options: ["--hang-first", "1", "--hang-seconds", "6"])
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let (shipper, metrics) = try shipper(url: receiver.url(), spoolDir: spoolDir, requestTimeout: 1)
        let findings = Sample.many(4)
        shipper.submit(findings)
        let requests = receiver.wait { $0.contains { $0.status == "200" } }
        shipper.shutdown(grace: 2)
        // The client gave up on the held request (a timeout, counted as such) and sent it again.
        #expect(requests.map(\.status) == ["hang", "200"])
        #expect(Self.deliveredIDs(requests, .ndjson) == findings.map(\.id))
        #expect(metrics.value(Shipper.Metric.failures, [("reason", "timeout")]) == 1)
    }

    @Test("a 4xx refusal: the receiver's message is logged and the batch goes to the dead-letter file")
    func refused() throws {
        let receiver = try Receiver(mode: "ndjson", options: ["--reject-status", "400"])
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let logs = LogCapture()
        let (shipper, metrics) = try shipper(url: receiver.url(), spoolDir: spoolDir, logs: logs)
        let findings = Sample.many(3)
        shipper.submit(findings)
        shipper.shutdown(grace: 5)
        #expect(receiver.requests().map(\.status) == ["400"])  // not retried
        let dead = try String(contentsOfFile: "\(spoolDir)/dead-letter.ndjson", encoding: .utf8)
        let entries = try dead.split(separator: "\n").map { try JSONParser.parse(String($0)) }
        #expect(entries.map { $0["finding"]?["id"]?.stringValue ?? "" } == findings.map(\.id))
        #expect(entries.allSatisfy { $0["status"] == 400 })
        #expect(entries.first?["reason"]?.stringValue?.contains("entry too large for this tenant") == true)
        #expect(logs.all.contains { $0.contains("receiver refused") && $0.contains("entry too large for this tenant") })
        #expect(metrics.value(Shipper.Metric.deadLetter) == 3)
        #expect(metrics.value(Shipper.Metric.spoolFindings) == 0)
    }

    @Test("elasticsearch: a re-sent batch is not duplicated (409) and a mapping error is dead-lettered")
    func elasticsearchItems() throws {
        let findings = Sample.many(5)
        let rejected = findings[2].id
        let receiver = try Receiver(mode: "elasticsearch", options: ["--es-reject-id", rejected])
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let (shipper, metrics) = try shipper(url: receiver.url(), format: .elasticsearch, spoolDir: spoolDir)
        shipper.submit(findings)
        receiver.wait { $0.count >= 1 }
        // The same findings again, as after a response lost in transit.
        shipper.submit(findings)
        shipper.shutdown(grace: 5)
        #expect(receiver.requests().count == 2)
        #expect(metrics.value(Shipper.Metric.duplicates) == 4)
        #expect(metrics.value(Shipper.Metric.delivered) == 8)
        #expect(metrics.value(Shipper.Metric.deadLetter) == 2)
        let dead = try String(contentsOfFile: "\(spoolDir)/dead-letter.ndjson", encoding: .utf8)
        let entries = try dead.split(separator: "\n").map { try JSONParser.parse(String($0)) }
        #expect(entries.map { $0["finding"]?["id"]?.stringValue } == [rejected, rejected])
        #expect(entries.first?["reason"] == "mapper_parsing_exception: failed to parse field [evidence]")
    }

    @Test("elasticsearch: an item refused with 429 is sent again alone")
    func elasticsearchItemRetry() throws {
        let findings = Sample.many(4)
        let receiver = try Receiver(mode: "elasticsearch", options: ["--es-busy-id", findings[1].id])
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let (shipper, metrics) = try shipper(url: receiver.url(), format: .elasticsearch, spoolDir: spoolDir)
        shipper.submit(findings)
        receiver.wait { $0.count >= 2 }
        shipper.shutdown(grace: 5)
        let requests = receiver.requests()
        #expect(requests.count == 2)
        #expect(try requests.map { try Self.ids($0, .elasticsearch) } == [findings.map(\.id), [findings[1].id]])
        #expect(metrics.value(Shipper.Metric.delivered) == 4)
        #expect(metrics.value(Shipper.Metric.duplicates) == 0)
        #expect(metrics.value(Shipper.Metric.failures, [("reason", "item_retry")]) == 1)
        #expect(metrics.value(Shipper.Metric.spoolFindings) == 0)
    }

    @Test("a full spool drops its oldest findings, counts them, and delivers the rest when the receiver is back")
    func spoolFull() throws {
        let port = Receiver.freePort()
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let metrics = MetricsRegistry()
        let batches = (0..<6).map { Sample.many(10, start: Int64($0 * 100)) }
        let segmentBytes: Int64 = try {
            let probe = try Spool(directory: spoolDir + "/probe", maxBytes: 1 << 20)
            probe.append(Sample.records(batches[0]))
            return probe.totalBytes
        }()
        let shipper = Shipper(
            configuration: ShipperConfiguration(
                url: "http://127.0.0.1:\(port)", format: .ndjson, requestTimeout: 2, batchMaxFindings: 10,
                batchWait: 0.01, backoff: Backoff(initial: 0.1, maximum: 0.2)),
            transport: CurlHTTPClient(connectTimeout: 1),
            spool: try Spool(directory: spoolDir + "/spool", maxBytes: segmentBytes * 3 + segmentBytes / 2),
            deadLetter: DeadLetterFile(path: "\(spoolDir)/dead-letter.ndjson"), metrics: metrics,
            logger: LogCapture().logger)
        shipper.start()
        for batch in batches {
            shipper.submit(batch)
            usleep(100_000)
        }
        for _ in 0..<100 where metrics.value(Shipper.Metric.dropped, [("reason", "spool_full")]) < 30 { usleep(50_000) }
        #expect(metrics.value(Shipper.Metric.dropped, [("reason", "spool_full")]) == 30)
        #expect(metrics.value(Shipper.Metric.spoolFindings) == 30)
        let receiver = try Receiver(mode: "ndjson", port: port)
        let requests = receiver.wait { Self.deliveredIDs($0, .ndjson).count >= 30 }
        shipper.shutdown(grace: 2)
        #expect(Self.deliveredIDs(requests, .ndjson) == batches.suffix(3).flatMap { $0.map(\.id) })
    }

    @Test("a damaged segment in the spool is quarantined and skipped; the ones after it are delivered")
    func damagedSegment() throws {
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let batches = (0..<3).map { Sample.many(3, start: Int64($0 * 10)) }
        do {
            let spool = try Spool(directory: spoolDir, maxBytes: 1 << 20)
            for batch in batches { spool.append(Sample.records(batch)) }
        }
        let middle = try FileManager.default.contentsOfDirectory(atPath: spoolDir).filter { $0.hasPrefix("segment-") }
            .sorted()[1]
        var bytes = try Data(contentsOf: URL(fileURLWithPath: "\(spoolDir)/\(middle)"))
        bytes[bytes.count - 3] = UInt8(ascii: "X")
        try bytes.write(to: URL(fileURLWithPath: "\(spoolDir)/\(middle)"))
        let receiver = try Receiver(mode: "ndjson")
        let (shipper, metrics) = try shipper(url: receiver.url(), spoolDir: spoolDir)
        let requests = receiver.wait { $0.count >= 2 }
        shipper.shutdown(grace: 2)
        #expect(Self.deliveredIDs(requests, .ndjson) == (batches[0] + batches[2]).map(\.id))
        #expect(metrics.value(Shipper.Metric.quarantined) == 1)
        #expect(FileManager.default.fileExists(atPath: "\(spoolDir)/quarantine/\(middle)"))
    }

    @Test("a spool segment that cannot be read for a moment (too many open files) is retried, not quarantined")
    func transientSpoolRead() throws {
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let findings = Sample.many(3)
        do { try Spool(directory: spoolDir, maxBytes: 1 << 20).append(Sample.records(findings)) }
        let failing = FailingReader(failures: 0, code: EMFILE)
        let receiver = try Receiver(mode: "ndjson")
        let logs = LogCapture()
        let (shipper, metrics) = try shipper(
            url: receiver.url(), spoolDir: spoolDir, logs: logs, spoolReader: failing.reader, start: false)
        failing.fail(next: 2)
        shipper.start()
        let requests = receiver.wait { Self.deliveredIDs($0, .ndjson).count >= 3 }
        shipper.shutdown(grace: 2)
        #expect(Self.deliveredIDs(requests, .ndjson) == findings.map(\.id))
        #expect(metrics.value(Shipper.Metric.failures, [("reason", "spool_read")]) == 2)
        #expect(metrics.value(Shipper.Metric.quarantined) == 0)
        #expect(logs.all.filter { $0.contains("reason=spool_read") }.count == 2)
        #expect(!FileManager.default.fileExists(atPath: "\(spoolDir)/quarantine"))
    }

    @Test("segments damaged before the start are quarantined with one log line each")
    func quarantinedAtStart() throws {
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        try Data("{}\n".utf8).write(to: URL(fileURLWithPath: "\(spoolDir)/segment-00000000000000000001.ndjson"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: "\(spoolDir)/segment-18446744073709551615.ndjson"))
        let logs = LogCapture()
        let (shipper, metrics) = try shipper(url: "http://127.0.0.1:1", spoolDir: spoolDir, logs: logs, start: false)
        shipper.shutdown(grace: 0)
        let lines = logs.all.filter { $0.contains("damaged spool segment quarantined") }
        #expect(lines.count == 2)
        #expect(
            lines.contains { $0.contains("segment-00000000000000000001.ndjson") && $0.contains("reason=bad header") })
        #expect(lines.contains { $0.contains("segment-18446744073709551615.ndjson") && $0.contains("20-digit") })
        #expect(metrics.value(Shipper.Metric.quarantined) == 2)
    }

    @Test("--endpoint-header: every request carries the given headers (Loki's tenant), after pgnode's own")
    func endpointHeaders() throws {
        let receiver = try Receiver(mode: "loki")
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let headers = [
            try EndpointHeader.parse("X-Scope-OrgID: team-a"), try EndpointHeader.parse("X-Gateway-Key:\tk1 "),
        ]
        let (shipper, _) = try shipper(url: receiver.url(), format: .loki, spoolDir: spoolDir, headers: headers)
        shipper.submit(Sample.many(3))
        shipper.shutdown(grace: 10)
        let requests = receiver.requests()
        #expect(requests.count == 1)
        #expect(requests.first?.headers["x-scope-orgid"] == "team-a")
        #expect(requests.first?.headers["x-gateway-key"] == "k1")
        #expect(requests.first?.headers["content-encoding"] == "gzip")
    }

    @Test("the bearer token follows the token file and is never logged")
    func tokenRotation() throws {
        let receiver = try Receiver(mode: "ndjson", options: ["--fail-first", "1"])
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let tokenPath = "\(spoolDir)/token"
        try "secret-one\n".write(toFile: tokenPath, atomically: true, encoding: .utf8)
        let logs = LogCapture()
        let (shipper, _) = try shipper(url: receiver.url(), spoolDir: spoolDir, logs: logs, tokenFile: tokenPath)
        shipper.submit(Sample.many(2))
        receiver.wait { $0.count >= 2 }
        try "secret-two".write(toFile: tokenPath, atomically: true, encoding: .utf8)
        shipper.submit(Sample.many(2, start: 50))
        receiver.wait { $0.count >= 3 }
        shipper.shutdown(grace: 2)
        let auth = receiver.requests().map { $0.headers["authorization"] ?? "" }
        #expect(auth == ["Bearer secret-one", "Bearer secret-one", "Bearer secret-two"])
        #expect(!logs.all.isEmpty)  // the 500 was logged…
        #expect(!logs.all.contains { $0.contains("secret-") })  // …without the token
    }

    @Test("shutdown with the receiver down keeps the findings in the spool; the next run delivers them")
    func shutdownKeepsSpool() throws {
        let port = Receiver.freePort()
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let findings = Sample.many(30)
        do {
            let (shipper, metrics) = try shipper(
                url: "http://127.0.0.1:\(port)", spoolDir: spoolDir, batchMaxFindings: 10)
            shipper.submit(findings)
            shipper.shutdown(grace: 0.5)
            #expect(shipper.isFinished)  // the delivery thread ended within the grace period
            #expect(metrics.value(Shipper.Metric.spoolFindings) == 30)
        }
        let receiver = try Receiver(mode: "ndjson", port: port)
        let (shipper, _) = try shipper(url: receiver.url(), spoolDir: spoolDir, batchMaxFindings: 10)
        let requests = receiver.wait { Self.deliveredIDs($0, .ndjson).count >= 30 }
        shipper.shutdown(grace: 2)
        #expect(Self.deliveredIDs(requests, .ndjson) == findings.map(\.id))
        #expect(requests.count == 3)
    }

    @Test("batches are cut by count and by bytes")
    func batching() throws {
        let receiver = try Receiver(mode: "ndjson")
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let findings = Sample.many(35)
        let (byCount, _) = try shipper(url: receiver.url(), spoolDir: spoolDir + "/a", batchMaxFindings: 10)
        byCount.submit(findings)
        byCount.shutdown(grace: 5)
        #expect(receiver.requests().map { $0.body.split(separator: "\n").count } == [10, 10, 10, 5])
        let lineBytes = findings[0].jsonLine.utf8.count + 1
        let (byBytes, _) = try shipper(
            url: receiver.url(), spoolDir: spoolDir + "/b", batchMaxBytes: lineBytes * 4 + 10)
        byBytes.submit(Array(findings.prefix(9)))
        byBytes.shutdown(grace: 5)
        let sizes = receiver.requests().dropFirst(4).map { $0.body.utf8.count }
        #expect(sizes.count == 3)
        #expect(sizes.allSatisfy { $0 <= lineBytes * 4 + 10 })
    }

    @Test("the in-memory queue is bounded: the oldest findings are dropped and counted, diagnosis never waits")
    func queueBound() throws {
        let receiver = try Receiver(mode: "ndjson")
        let spoolDir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: spoolDir) }
        let (shipper, metrics) = try shipper(url: receiver.url(), spoolDir: spoolDir, queueCapacity: 10, start: false)
        let findings = Sample.many(25)
        // The delivery thread is not running yet: a submit that waited for room would never return.
        for finding in findings { shipper.submit([finding]) }
        #expect(metrics.value(Shipper.Metric.dropped, [("reason", "queue_full")]) == 15)
        shipper.start()
        shipper.shutdown(grace: 5)
        #expect(Self.deliveredIDs(receiver.requests(), .ndjson) == findings.suffix(10).map(\.id))
    }
}
