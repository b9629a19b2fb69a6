import PGNodeModel
import Shipping

extension Harness {
    /// Runtime state files, spool headers and receivers' responses are JSON.
    static let json = Harness(
        name: "json", maxLength: 8192,
        summary: "JSONParser (bytes and text), JSONWriter round trip, an Elasticsearch _bulk response"
    ) { bytes in
        let fromBytes = try? JSONParser.parse(bytes: bytes)
        let fromText = try? JSONParser.parse(text(bytes))
        consume(fromText)
        if let value = fromBytes {
            consume(value)
            // What the writer prints, the parser reads back, and printing that again changes nothing.
            let written = JSONWriter.string(value)
            let again: JSONValue
            do {
                again = try JSONParser.parse(written)
            } catch {
                fatalError("invariant broken: JSONWriter printed what JSONParser refuses (\(error)): \(written)")
            }
            require(JSONWriter.string(again) == written, "JSONWriter → JSONParser → JSONWriter changed the text")
            consume(value.intValue)
            consume(value["id"]?.stringValue)
        }
        if String(validating: bytes, as: UTF8.self) != nil {
            require((fromText != nil) == (fromBytes != nil), "parse(text) and parse(bytes) disagree on valid UTF-8")
        }
        let payload = ElasticsearchPayload(index: "pgnode-findings")
        if let results = payload.itemResults(response: bytes, records: bulkRecords) {
            consume(results)
            require(results.count == bulkRecords.count, "one _bulk result per record")
        }
    }

    /// Two findings as a batch sent to Elasticsearch.
    private static let bulkRecords: [FindingRecord] = [
        try! FindingRecord(line: #"{"id":"5d604b849c734e840f503794d560a04b","time":"2026-11-26T01:56:53.173Z"}"#),
        try! FindingRecord(line: #"{"id":"0f2d1c3e5b6a4c7d8e9f0a1b2c3d4e5f","time":"2026-11-26T01:56:54Z"}"#),
    ]
}
