import PGNodeModel
import Shipping
import Testing

@Suite("Payload encoders: each API's documented shape")
struct EncoderTests {
    func parse(_ bytes: [UInt8]) throws -> JSONValue { try JSONParser.parse(bytes: bytes) }

    @Test("ndjson: the findings' lines verbatim, one per line, newline-terminated")
    func ndjson() throws {
        let findings = Sample.many(3)
        let body = String(decoding: NDJSONPayload().encode(Sample.records(findings)), as: UTF8.self)
        #expect(body == findings.map { $0.jsonLine + "\n" }.joined())
        #expect(NDJSONPayload().contentType == "application/x-ndjson")
    }

    @Test("loki: streams keyed by node/namespace/pod/check/severity, values [ns string, finding line] in time order")
    func loki() throws {
        let late = Sample.finding("shm.size", .warning, resource: Sample.container(1), window: 1, timeNanos: 2_000)
        let early = Sample.finding("shm.size", .warning, resource: Sample.container(1), window: 2, timeNanos: 1_000)
        let node = Sample.finding("kernel.btf", .ok, window: 3, timeNanos: 1_500)
        let json = try parse(LokiPayload().encode(Sample.records([late, node, early])))
        let streams = try #require(json["streams"]?.arrayValue)
        #expect(streams.count == 2)
        let container = streams[0]
        #expect(
            container["stream"]
                == [
                    "service_name": "pgnode", "node": "node-1", "namespace": "prod", "pod": "db-0", "check": "shm.size",
                    "severity": "warning",
                ])
        let values = try #require(container["values"]?.arrayValue)
        #expect(values.count == 2)
        #expect(values[0].arrayValue?[0] == "1000")
        #expect(values[0].arrayValue?[1].stringValue == early.jsonLine)
        #expect(values[1].arrayValue?[0] == "2000")
        #expect(values[1].arrayValue?[1].stringValue == late.jsonLine)
        // Node findings have no pod or namespace label (Loki labels are never empty strings).
        #expect(
            streams[1]["stream"] == [
                "service_name": "pgnode", "node": "node-1", "check": "kernel.btf", "severity": "ok",
            ])
        #expect(streams[1]["values"]?.arrayValue?.first?.arrayValue?[0] == "1500")
        // Each value's line parses back to the finding.
        let line = try #require(values[0].arrayValue?[1].stringValue)
        #expect(try JSONParser.parse(line)["id"]?.stringValue == early.id)
    }

    @Test("elasticsearch: create action with _index and _id = finding id, then the source with @timestamp")
    func elasticsearch() throws {
        let findings = Sample.many(4)
        let body = String(
            decoding: ElasticsearchPayload(index: "pgnode-x").encode(Sample.records(findings)), as: UTF8.self)
        #expect(body.hasSuffix("\n"))
        let lines = body.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == 8)
        for (i, finding) in findings.enumerated() {
            let action = try JSONParser.parse(String(lines[2 * i]))
            #expect(action == ["create": ["_index": "pgnode-x", "_id": .string(finding.id)]])
            let source = try #require(try JSONParser.parse(String(lines[2 * i + 1])).objectValue)
            #expect(source.keys.first == "@timestamp")
            #expect(source["@timestamp"]?.stringValue == finding.time.rfc3339)
            #expect(source["message"] == finding.json["summary"])
            #expect(source["event"] == ["dataset": "pgnode.finding"])
            #expect(source.keys.suffix(2) == ["message", "event"])
            var rest = source
            rest["@timestamp"] = nil
            rest["message"] = nil
            rest["event"] = nil
            #expect(JSONValue.object(rest) == finding.json)
        }
    }

    @Test("elasticsearch: the _bulk response decides each finding's fate")
    func bulkResponse() throws {
        let records = Sample.records(Sample.many(5))
        let encoder = ElasticsearchPayload(index: "i")
        #expect(
            encoder.itemResults(response: Array(#"{"took":3,"errors":false,"items":[]}"#.utf8), records: records) == nil
        )
        let response = """
            {"took":5,"errors":true,"items":[
             {"create":{"_index":"i","_id":"a","status":201,"result":"created"}},
             {"create":{"_index":"i","_id":"b","status":409,"error":{"type":"version_conflict_engine_exception","reason":"exists"}}},
             {"create":{"_index":"i","_id":"c","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse"}}},
             {"create":{"_index":"i","_id":"d","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},
             {"create":{"_index":"i","_id":"e","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary"}}}]}
            """
        let results = try #require(encoder.itemResults(response: Array(response.utf8), records: records))
        #expect(
            results == [
                .created, .duplicate, .rejected(status: 400, reason: "mapper_parsing_exception: failed to parse"),
                .retry(status: 429, reason: "es_rejected_execution_exception: queue full"),
                .retry(status: 503, reason: "unavailable_shards_exception: primary"),
            ])
        // A body that is not a bulk response: retry everything rather than assume success.
        let garbage = try #require(encoder.itemResults(response: Array("<html>".utf8), records: records))
        #expect(garbage.allSatisfy { if case .retry = $0 { true } else { false } })
    }

    @Test(
        "otlp: resourceLogs per resource, container.runtime.name, scopeLogs with logRecords, eventName, string nanos, mapped severities"
    )
    func otlp() throws {
        let evidence: JSONObject = [
            "size_bytes": 67_108_864, "ratio": 0.5, "ok": true, "path": "/dev/shm", "missing": nil,
            "histogram": [["low": 1, "high": 1, "count": 3]],
        ]
        let a = Sample.finding("shm.size", .critical, resource: Sample.container(1), window: 1, evidence: evidence)
        let b = Sample.finding("kernel.btf", .ok, window: 2)
        let c = Sample.finding("memory.limit", .unavailable, resource: Sample.container(1), window: 3)
        let json = try parse(OTLPPayload().encode(Sample.records([a, b, c])))
        let resourceLogs = try #require(json["resourceLogs"]?.arrayValue)
        #expect(resourceLogs.count == 2)
        let attributes = try #require(resourceLogs[0]["resource"]?["attributes"]?.arrayValue)
        let keys = attributes.compactMap { $0["key"]?.stringValue }
        #expect(
            keys == [
                "k8s.node.name", "container.id", "container.runtime.name", "k8s.pod.name", "k8s.pod.uid",
                "k8s.namespace.name", "k8s.container.name",
            ])
        #expect(attributes[0]["value"] == ["stringValue": "node-1"])
        let scopeLogs = try #require(resourceLogs[0]["scopeLogs"]?.arrayValue)
        #expect(scopeLogs.count == 1)
        #expect(scopeLogs[0]["scope"]?["name"] == "pgnode")
        let records = try #require(scopeLogs[0]["logRecords"]?.arrayValue)
        #expect(records.count == 2)
        let first = records[0]
        #expect(first["timeUnixNano"] == .string(String(a.time.nanoseconds)))
        #expect(first["observedTimeUnixNano"] == .string(String(a.time.nanoseconds)))
        #expect(first["severityNumber"] == 17)
        #expect(first["severityText"] == "critical")
        #expect(first["eventName"] == "pgnode.finding")
        #expect(first["body"] == ["stringValue": .string(a.observation.summary)])
        let attrs = try #require(first["attributes"]?.arrayValue)
        func attribute(_ key: String) -> JSONValue? { attrs.first(where: { $0["key"]?.stringValue == key })?["value"] }
        #expect(attribute("pgnode.finding.id") == ["stringValue": .string(a.id)])
        #expect(attribute("pgnode.check") == ["stringValue": "shm.size"])
        #expect(attribute("pgnode.remedy") == ["stringValue": "Do something about shm.size."])
        let evidenceValues = try #require(attribute("pgnode.evidence")?["kvlistValue"]?["values"]?.arrayValue)
        func ev(_ key: String) -> JSONValue? {
            evidenceValues.first(where: { $0["key"]?.stringValue == key })?["value"]
        }
        #expect(ev("size_bytes") == ["intValue": "67108864"])
        #expect(ev("ratio") == ["doubleValue": 0.5])
        #expect(ev("ok") == ["boolValue": true])
        #expect(ev("path") == ["stringValue": "/dev/shm"])
        #expect(ev("missing") == nil)
        let histogram = try #require(ev("histogram")?["arrayValue"]?["values"]?.arrayValue)
        #expect(histogram.first?["kvlistValue"]?["values"]?.arrayValue?.count == 3)
        #expect(records[1]["severityNumber"] == 13)
        // The node resource has only k8s.node.name.
        #expect(
            resourceLogs[1]["resource"]?["attributes"] == [
                ["key": "k8s.node.name", "value": ["stringValue": "node-1"]]
            ])
        #expect(resourceLogs[1]["scopeLogs"]?.arrayValue?[0]["logRecords"]?.arrayValue?[0]["severityNumber"] == 9)
    }

    @Test("severity numbers follow the OpenTelemetry ranges")
    func severities() {
        #expect(OTLPPayload.severityNumber("ok") == 9)
        #expect(OTLPPayload.severityNumber("info") == 10)
        #expect(OTLPPayload.severityNumber("warning") == 13)
        #expect(OTLPPayload.severityNumber("critical") == 17)
        #expect(OTLPPayload.severityNumber("unavailable") == 13)
    }

    @Test("default paths are added only to URLs without a path")
    func urls() {
        #expect(EndpointFormat.loki.resolvedURL("http://loki:3100") == "http://loki:3100/loki/api/v1/push")
        #expect(EndpointFormat.loki.resolvedURL("http://loki:3100/") == "http://loki:3100/loki/api/v1/push")
        #expect(EndpointFormat.otlp.resolvedURL("https://c:4318") == "https://c:4318/v1/logs")
        #expect(EndpointFormat.elasticsearch.resolvedURL("https://es:9200") == "https://es:9200/_bulk")
        #expect(EndpointFormat.otlp.resolvedURL("http://gw/otel/v1/logs") == "http://gw/otel/v1/logs")
        #expect(EndpointFormat.ndjson.resolvedURL("http://vector:8080") == "http://vector:8080")
    }

    @Test("a spooled line reads back to the same record")
    func recordRoundTrip() throws {
        let finding = Sample.finding(timeNanos: 1_764_118_613_173_000_000)
        let record = try FindingRecord(line: finding.jsonLine)
        #expect(record == FindingRecord(finding))
        #expect(record.timeNanoseconds == 1_764_118_613_173_000_000)
        #expect(throws: RecordError.self) { try FindingRecord(line: "{\"id\":\"x\"}") }
        #expect(throws: RecordError.self) { try FindingRecord(line: "{not json") }
    }

    @Test(
        "RFC 3339 parsing inverts Timestamp.rfc3339", arguments: [0, 951_782_400_123, 1_764_118_613_173, -86_400_000])
    func rfc3339(millis: Int64) {
        let t = Timestamp(nanoseconds: millis * 1_000_000)
        #expect(Timestamp(rfc3339: t.rfc3339) == t)
        #expect(Timestamp(rfc3339: "2026-11-26T01:56:53Z") == Timestamp(nanoseconds: 1_795_658_213_000_000_000))
        #expect(Timestamp(rfc3339: "2026-11-26 01:56:53") == nil)
    }

    @Test(
        "k8s.cluster.name (--cluster-name) reaches every format: the line, an OTLP resource attribute, a Loki label, the document"
    )
    func clusterName() throws {
        var containerResource = Sample.container(1)
        containerResource.clusterName = "prod-eu"
        let container = Sample.finding("shm.size", .warning, resource: containerResource, window: 1)
        let node = Sample.finding(
            "kernel.btf", .ok, resource: ResourceAttributes(nodeName: "node-1", clusterName: "prod-eu"), window: 2)
        let records = Sample.records([container, node])
        for finding in [container, node] {
            #expect(finding.json["resource"]?["k8s.cluster.name"] == "prod-eu")
            #expect(finding.jsonLine.contains(#""k8s.node.name":"node-1","k8s.cluster.name":"prod-eu""#))
        }
        // Without --cluster-name the key is absent, not null.
        #expect(Sample.finding().json["resource"]?.objectValue?["k8s.cluster.name"] == nil)
        #expect(!Sample.finding().jsonLine.contains("k8s.cluster.name"))

        let otlp = try parse(OTLPPayload().encode(records))
        let resources = try #require(otlp["resourceLogs"]?.arrayValue)
        #expect(resources.count == 2)
        for resource in resources {
            let attributes = resource["resource"]?["attributes"]?.arrayValue ?? []
            #expect(
                attributes.contains { $0["key"] == "k8s.cluster.name" && $0["value"] == ["stringValue": "prod-eu"] })
        }
        let loki = try parse(LokiPayload().encode(records))
        #expect(loki["streams"]?.arrayValue?.allSatisfy { $0["stream"]?["cluster"] == "prod-eu" } == true)
        let bulk = String(decoding: ElasticsearchPayload(index: "x").encode(records), as: UTF8.self)
        let documents = bulk.split(separator: "\n").enumerated().filter { $0.offset % 2 == 1 }
        #expect(documents.count == 2)
        for document in documents {
            #expect(try JSONParser.parse(String(document.element))["resource"]?["k8s.cluster.name"] == "prod-eu")
        }
    }
}
