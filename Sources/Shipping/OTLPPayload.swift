import PGNodeModel

/// `otlp`: OTLP/HTTP logs in the JSON encoding (`POST /v1/logs`, `Content-Type: application/json`).
///
/// Findings about the same resource share one `resourceLogs` entry whose `resource.attributes` are
/// the finding's `resource` (OpenTelemetry semantic-convention keys, nulls left out; the finding's
/// `container.runtime` is `container.runtime.name`, its key in the current conventions). Each
/// finding is one `logRecord` with the event name `pgnode.finding` (`eventName`):
/// `timeUnixNano` and `observedTimeUnixNano` are its `time` as a decimal string,
/// `severityNumber` is mapped as below and `severityText` is pgnode's severity, `body` is the
/// summary, and `attributes` carry the rest (`pgnode.finding.id`, `pgnode.check`, `pgnode.severity`,
/// `pgnode.remedy`, `pgnode.schema` and `pgnode.evidence` as a key-value list).
///
/// | pgnode | severityNumber |
/// | --- | --- |
/// | ok | 9 (INFO) |
/// | info | 10 (INFO2) |
/// | warning | 13 (WARN) |
/// | critical | 17 (ERROR) |
/// | unavailable | 13 (WARN): a check that could not run deserves a look |
public struct OTLPPayload: PayloadEncoder {
    /// The encoder.
    public init() {}

    public var contentType: String { "application/json" }

    /// Every log record's `eventName`.
    public static let eventName = "pgnode.finding"

    /// Resource keys of the finding schema whose semantic-convention key is now another.
    static let renamedResourceKeys = ["container.runtime": "container.runtime.name"]

    /// A finding's resource as OTLP resource attributes.
    static func resourceAttributes(_ resource: JSONObject) -> [JSONValue] {
        var renamed = JSONObject()
        for member in resource.members { renamed[renamedResourceKeys[member.key] ?? member.key] = member.value }
        return keyValues(renamed)
    }

    /// The OpenTelemetry severity number of a pgnode severity.
    public static func severityNumber(_ severity: String) -> Int64 {
        switch severity {
        case "ok": 9
        case "info": 10
        case "warning": 13
        case "critical": 17
        case "unavailable": 13
        default: 0
        }
    }

    /// A JSON value as an OTLP `AnyValue`. Integers are strings, as the protobuf JSON mapping writes int64.
    public static func anyValue(_ value: JSONValue) -> JSONValue {
        switch value {
        case .null: return .object(JSONObject())
        case .bool(let b): return ["boolValue": .bool(b)]
        case .int(let i): return ["intValue": .string(String(i))]
        case .double(let d): return ["doubleValue": d.isFinite ? .double(d) : .string(d.isNaN ? "NaN" : "Infinity")]
        case .string(let s): return ["stringValue": .string(s)]
        case .array(let items): return ["arrayValue": ["values": .array(items.map(anyValue))]]
        case .object(let object): return ["kvlistValue": ["values": .array(keyValues(object))]]
        }
    }

    /// An object as a list of OTLP `KeyValue`s, dropping nulls.
    static func keyValues(_ object: JSONObject) -> [JSONValue] {
        object.members.compactMap { member in
            if case .null = member.value { return nil }
            return ["key": .string(member.key), "value": anyValue(member.value)]
        }
    }

    static func string(_ key: String, _ value: JSONValue?) -> JSONValue {
        ["key": .string(key), "value": ["stringValue": .string(value?.stringValue ?? "")]]
    }

    /// The log record of one finding.
    public static func logRecord(_ record: FindingRecord) -> JSONValue {
        let time = JSONValue.string(String(record.timeNanoseconds))
        let object = record.object
        var attributes: [JSONValue] = [
            string("pgnode.finding.id", object["id"]),
            string("pgnode.check", object["check"]),
            string("pgnode.severity", object["severity"]),
            string("pgnode.schema", object["schema"]),
        ]
        if let remedy = object["remedy"]?.stringValue, !remedy.isEmpty {
            attributes.append(string("pgnode.remedy", object["remedy"]))
        }
        attributes.append(
            ["key": "pgnode.evidence", "value": anyValue(object["evidence"] ?? .object(JSONObject()))])
        return [
            "timeUnixNano": time,
            "observedTimeUnixNano": time,
            "severityNumber": .int(severityNumber(record.severity)),
            "severityText": .string(record.severity),
            "eventName": .string(eventName),
            "body": ["stringValue": object["summary"] ?? .string("")],
            "attributes": .array(attributes),
        ]
    }

    public func encode(_ records: [FindingRecord]) -> [UInt8] {
        var groups: [(key: String, resource: JSONObject, records: [FindingRecord])] = []
        for record in records {
            let key = JSONWriter.string(.object(record.resource))
            if let index = groups.firstIndex(where: { $0.key == key }) {
                groups[index].records.append(record)
            } else {
                groups.append((key, record.resource, [record]))
            }
        }
        let body: JSONValue = [
            "resourceLogs": .array(
                groups.map { group in
                    [
                        "resource": ["attributes": .array(Self.resourceAttributes(group.resource))],
                        "scopeLogs": [
                            [
                                "scope": ["name": "pgnode", "version": .string(PGNodeVersion.current)],
                                "logRecords": .array(group.records.map(Self.logRecord)),
                            ]
                        ],
                    ]
                })
        ]
        return Array(JSONWriter.string(body).utf8)
    }
}
