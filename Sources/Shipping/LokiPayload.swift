import PGNodeModel

/// `loki`: the push API's JSON body (`POST /loki/api/v1/push`):
///
///     {"streams":[{"stream":{"node":"n1","namespace":"prod","pod":"db-0","check":"shm.size",
///                  "severity":"warning"},
///                  "values":[["1764118613173000000","<the finding's JSON line>"]]}]}
///
/// Stream labels are few and of low cardinality: `service_name` (`pgnode`), `cluster` (only with
/// `--cluster-name`: one value per agent, so it adds no stream), `node`, `namespace`, `pod` (the
/// last two only for container findings whose pod is known), `check` and `severity`. Timestamps are nanoseconds since
/// the epoch as strings; each stream's values are in time order, as Loki requires.
public struct LokiPayload: PayloadEncoder {
    /// The encoder.
    public init() {}

    public var contentType: String { "application/json" }

    /// The stream labels of `record`.
    public static func labels(_ record: FindingRecord) -> JSONObject {
        let resource = record.resource
        // service_name: the label Loki's own ingestion derives when it is missing (as
        // "unknown_service"), and the one Grafana's log views group by.
        var labels: JSONObject = [
            "service_name": "pgnode", "node": .string(resource["k8s.node.name"]?.stringValue ?? "unknown"),
        ]
        if let cluster = resource["k8s.cluster.name"]?.stringValue { labels["cluster"] = .string(cluster) }
        if let namespace = resource["k8s.namespace.name"]?.stringValue { labels["namespace"] = .string(namespace) }
        if let pod = resource["k8s.pod.name"]?.stringValue { labels["pod"] = .string(pod) }
        labels["check"] = .string(record.check)
        labels["severity"] = .string(record.severity)
        return labels
    }

    public func encode(_ records: [FindingRecord]) -> [UInt8] {
        var streams: [(labels: JSONObject, key: String, records: [FindingRecord])] = []
        for record in records {
            let labels = Self.labels(record)
            let key = JSONWriter.string(.object(labels))
            if let index = streams.firstIndex(where: { $0.key == key }) {
                streams[index].records.append(record)
            } else {
                streams.append((labels, key, [record]))
            }
        }
        let body: JSONValue = [
            "streams": .array(
                streams.map { stream in
                    let ordered = stream.records.enumerated().sorted {
                        ($0.element.timeNanoseconds, $0.offset) < ($1.element.timeNanoseconds, $1.offset)
                    }
                    return [
                        "stream": .object(stream.labels),
                        "values": .array(
                            ordered.map { [.string(String($0.element.timeNanoseconds)), .string($0.element.line)] }),
                    ]
                })
        ]
        return Array(JSONWriter.string(body).utf8)
    }
}
