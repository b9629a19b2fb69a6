/// The wire formats pgnode can deliver findings in.
public enum EndpointFormat: String, Sendable, CaseIterable {
    /// `POST` of NDJSON, one finding a line (Vector, Fluent Bit's http input, any HTTP endpoint).
    case ndjson
    /// Grafana Loki's push API (`/loki/api/v1/push`), JSON.
    case loki
    /// Elasticsearch's or OpenSearch's `_bulk` API with `create` actions.
    case elasticsearch
    /// OTLP/HTTP JSON logs (`/v1/logs`), for an OpenTelemetry collector.
    case otlp

    /// The path appended to an endpoint URL that has none (`http://loki:3100` → `…/loki/api/v1/push`).
    public var defaultPath: String? {
        switch self {
        case .ndjson: nil
        case .loki: "/loki/api/v1/push"
        case .elasticsearch: "/_bulk"
        case .otlp: "/v1/logs"
        }
    }

    /// The encoder for this format; `index` is the Elasticsearch index or data stream.
    public func encoder(index: String) -> any PayloadEncoder {
        switch self {
        case .ndjson: NDJSONPayload()
        case .loki: LokiPayload()
        case .elasticsearch: ElasticsearchPayload(index: index)
        case .otlp: OTLPPayload()
        }
    }

    /// `url` with this format's default path when it has no path of its own.
    public func resolvedURL(_ url: String) -> String {
        guard let path = defaultPath else { return url }
        let parts = url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        // "http:", "", "host:port", then the path (without its leading slash) when there is one.
        guard parts.count >= 3, parts[0].hasSuffix(":"), parts[1].isEmpty else { return url }
        if parts.count == 3 { return url + path }
        return parts[3].isEmpty ? String(url.dropLast()) + path : url
    }
}

/// Turns a batch of findings into one request body of an endpoint format.
public protocol PayloadEncoder: Sendable {
    /// The request's Content-Type.
    var contentType: String { get }
    /// The uncompressed request body for `records`, in order.
    func encode(_ records: [FindingRecord]) -> [UInt8]
    /// What a successful (2xx) response says about each record; nil means all were accepted.
    func itemResults(response body: [UInt8], records: [FindingRecord]) -> [ItemResult]?
}

extension PayloadEncoder {
    public func itemResults(response body: [UInt8], records: [FindingRecord]) -> [ItemResult]? { nil }
}

/// The fate of one finding in a 2xx response that reports per-item results (Elasticsearch `_bulk`).
public enum ItemResult: Sendable, Equatable {
    /// Stored now.
    case created
    /// Already stored by an earlier attempt (HTTP 409 for a `create` with the same `_id`).
    case duplicate
    /// Refused for a reason that may pass later (429, 5xx): the batch is sent again.
    case retry(status: Int, reason: String)
    /// Refused for good (e.g. a mapping error): the finding goes to the dead-letter file.
    case rejected(status: Int, reason: String)
}
