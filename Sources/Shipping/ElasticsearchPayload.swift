import PGNodeModel

/// `elasticsearch`: the `_bulk` API (Elasticsearch and OpenSearch). Each finding is a `create`
/// action whose `_id` is the finding id, followed by its source:
///
///     {"create":{"_index":"pgnode-findings","_id":"5d604b849c734e840f503794d560a04b"}}
///     {"@timestamp":"2026-11-26T01:56:53.173Z","schema":"pgnode.finding.v1","id":"5d60…",…}
///
/// `create` refuses an `_id` that exists (409), so a retried batch never duplicates a finding, and
/// it also works for data streams (which take only `create`). The source is the finding with an
/// `@timestamp` (its `time`) first, the field data streams and Kibana expect, and two ECS fields
/// at the end: `message` (the summary, Kibana's default column) and `event.dataset`.
public struct ElasticsearchPayload: PayloadEncoder {
    /// The index or data stream.
    public let index: String
    /// The ECS `event.dataset` of every finding (data stream `logs-pgnode.finding-default`).
    public static let dataset = "pgnode.finding"

    /// The encoder for `index`.
    public init(index: String) { self.index = index }

    public var contentType: String { "application/x-ndjson" }

    public func encode(_ records: [FindingRecord]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(records.reduce(0) { $0 + $1.size + 100 })
        for record in records {
            let action: JSONValue = ["create": ["_index": .string(index), "_id": .string(record.id)]]
            out += JSONWriter.string(action).utf8
            out.append(10)
            var source: JSONObject = ["@timestamp": record.object["time"] ?? .null]
            for member in record.object.members { source[member.key] = member.value }
            // ECS fields: `message` is Kibana's default column (the summary), `event.dataset`
            // names the data set (and the data stream `logs-pgnode.finding-default`).
            source["message"] = record.object["summary"] ?? .null
            source["event"] = ["dataset": .string(Self.dataset)]
            out += JSONWriter.string(.object(source)).utf8
            out.append(10)
        }
        return out
    }

    /// Reads the bulk response: `errors:false` means every item was stored; otherwise each item's
    /// `status` decides (201/200 created, 409 already there, 429 and 5xx retried, others rejected).
    /// A response that cannot be read as a bulk response is treated as "retry everything".
    public func itemResults(response body: [UInt8], records: [FindingRecord]) -> [ItemResult]? {
        guard let json = try? JSONParser.parse(bytes: body) else {
            return records.map { _ in .retry(status: 200, reason: "unreadable _bulk response") }
        }
        if case .bool(false) = json["errors"] { return nil }
        guard let items = json["items"]?.arrayValue, items.count == records.count else {
            return records.map { _ in .retry(status: 200, reason: "_bulk response without one item per action") }
        }
        return items.map { item in
            let result = item["create"] ?? item["index"] ?? .null
            let status = Int(result["status"]?.intValue ?? 0)
            let error = result["error"]
            let reason =
                [error?["type"]?.stringValue, error?["reason"]?.stringValue].compactMap { $0 }.joined(separator: ": ")
            switch status {
            case 200, 201: return .created
            case 409: return .duplicate
            case 429, 500...599: return .retry(status: status, reason: reason)
            default: return .rejected(status: status, reason: reason.isEmpty ? "status \(status)" : reason)
            }
        }
    }
}
