/// `ndjson`: the findings' lines, each ending in a newline; `Content-Type: application/x-ndjson`.
public struct NDJSONPayload: PayloadEncoder {
    /// The encoder.
    public init() {}

    public var contentType: String { "application/x-ndjson" }

    public func encode(_ records: [FindingRecord]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(records.reduce(0) { $0 + $1.size })
        for record in records {
            out += record.line.utf8
            out.append(10)
        }
        return out
    }
}
