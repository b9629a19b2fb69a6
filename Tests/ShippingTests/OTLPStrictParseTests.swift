import Foundation
import PGNodeModel
import TestSupport
import Testing

@testable import Shipping

/// The OTLP bodies parsed with the official definitions (opentelemetry-proto from PyPI, which
/// scripts/setup installs): `json_format.Parse` into `ExportLogsServiceRequest`, unknown fields
/// refused, as a collector parses them.
@Suite("OTLP bodies parse strictly with opentelemetry-proto")
struct OTLPStrictParseTests {
    /// Parses stdin strictly; prints, per log record, its event name, severity number, the
    /// resource's attribute keys and the record's finding id.
    static let parser = """
        import json, sys
        from google.protobuf import json_format
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
        request = json_format.Parse(sys.stdin.read(), ExportLogsServiceRequest(), ignore_unknown_fields=False)
        out = []
        for resource_logs in request.resource_logs:
            keys = [a.key for a in resource_logs.resource.attributes]
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    ids = [a.value.string_value for a in record.attributes if a.key == "pgnode.finding.id"]
                    out.append({"event": record.event_name, "severity": record.severity_number,
                                "resource": keys, "id": ids[0], "time": record.time_unix_nano,
                                "body": record.body.string_value})
        print(json.dumps(out))
        """

    var parserAvailable: Bool {
        let probe = try? Command.run(
            ["python3", "-c", "import opentelemetry.proto.collector.logs.v1.logs_service_pb2"], timeout: 60)
        return TestEnvironment.require(probe?.status == 0, "python3 with opentelemetry-proto (scripts/setup)")
    }

    @Test("every body parses: eventName, container.runtime.name, hostile evidence (NaN, ±∞, nulls, nesting)")
    func strict() throws {
        guard parserAvailable else { return }
        let hostile: JSONObject = [
            "nan": .double(.nan), "inf": .double(.infinity), "minus_inf": .double(-.infinity),
            "max": .int(.max), "min": .int(.min), "null": nil, "nested": ["a": [nil, 1, "x", ["b": true]]],
            "empty_object": .object(JSONObject()), "empty_array": [], "text": "quote \" backslash \\ nl \n é",
        ]
        let findings =
            [
                Sample.finding("shm.size", .critical, resource: Sample.container(1), window: 1, evidence: hostile),
                Sample.finding("kernel.btf", .ok, window: 2),
                Sample.finding("memory.limit", .unavailable, resource: Sample.container(2, namespace: nil), window: 3),
            ] + Sample.many(20)
        let body = String(decoding: OTLPPayload().encode(Sample.records(findings)), as: UTF8.self)
        let result = try Command.run(["python3", "-c", Self.parser], stdin: body, timeout: 120)
        #expect(result.status == 0, "\(result.stderr)")
        let parsed = try #require(
            try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]], "\(result.stdout)")
        #expect(parsed.count == findings.count)
        #expect(parsed.allSatisfy { $0["event"] as? String == "pgnode.finding" })
        #expect(Set(parsed.compactMap { $0["id"] as? String }) == Set(findings.map(\.id)))
        let container = try #require(parsed.first { $0["id"] as? String == findings[0].id })
        #expect((container["resource"] as? [String])?.contains("container.runtime.name") == true)
        #expect((container["resource"] as? [String])?.contains("container.runtime") == false)
        #expect(container["severity"] as? Int == 17)
        #expect(container["time"] as? Int64 == findings[0].time.nanoseconds)
        #expect(container["body"] as? String == findings[0].observation.summary)
    }

    @Test("the strict parser refuses what a collector refuses (so a pass above means something)")
    func refuses() throws {
        guard parserAvailable else { return }
        for body in [
            #"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"eventNam":"x"}]}]}]}"#,
            #"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"soon"}]}]}]}"#,
            #"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"intValue":"1.5"}}]}]}]}"#,
        ] {
            let result = try Command.run(["python3", "-c", Self.parser], stdin: body, timeout: 120)
            #expect(result.status != 0, "accepted: \(body)")
        }
    }
}
