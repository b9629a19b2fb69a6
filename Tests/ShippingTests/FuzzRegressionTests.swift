import Foundation
import PGNodeModel
import Shipping
import TestSupport
import Testing

/// Inputs `scripts/fuzz` found that made a Shipping parser trap, kept in `Fuzz/Corpus/<target>/`
/// as `regression-*`: each is fed to the same parser here, which must neither trap nor make
/// something up.
@Suite("Fuzz regressions: Shipping")
struct ShippingFuzzRegressionTests {
    /// Past 2262 a time no longer fits in Int64 nanoseconds: the conversion overflowed.
    @Test(
        "Retry-After: a date past 2262 is no trap, and no 'retry now'",
        arguments: ["regression-imf-date-year-2300", "regression-asctime-date-year-18988"])
    func farRetryAfterDate(name: String) throws {
        let header = String(decoding: try FuzzCorpus.input("http-date", name), as: UTF8.self)
        let now = Timestamp(nanoseconds: 1_764_000_000_000_000_000)  // 2025-11-24
        // Year 2300: clamped to the documented maximum, never 0 ("retry now"). Year 18988 is no
        // HTTP date (four-digit years): no Retry-After, the backoff decides.
        let expected: Double? = name.hasSuffix("year-2300") ? RetryAfter.defaultMaximum : nil
        #expect(RetryAfter.seconds(header, now: now) == expected)
    }

    @Test("RFC 3339: a time past 2262 is not a time pgnode can hold (nil), not a trap")
    func farRFC3339Time() throws {
        let text = String(decoding: try FuzzCorpus.input("http-date", "regression-rfc3339-year-2826"), as: UTF8.self)
        #expect(Timestamp(rfc3339: text) == nil)
        #expect(Timestamp(rfc3339: "2026-11-27T01:56:53.173Z") != nil)
    }

    /// A finding line as the spool stores it, with `time` as given.
    func findingLine(time: String, id: String = "5d604b849c734e840f503794d560a04b") -> String {
        #"{"schema":"pgnode.finding.v1","id":"\#(id)","time":"\#(time)","check":"kernel.btf","severity":"ok","#
            + #""summary":"s","resource":{"k8s.node.name":"vm"},"evidence":{},"remedy":""}"#
    }

    /// Writes a segment file as `Spool` does: header (with `count`, else the number of lines,
    /// and the body's checksum), then the lines.
    func writeSegment(_ directory: String, name: String, lines: [String], count: Int64? = nil) throws {
        let body = Array(lines.map { $0 + "\n" }.joined().utf8)
        let header = #"{"pgnode_spool":1,"count":\#(count ?? Int64(lines.count)),"sha256":"\#(SHA256.hex(body))"}"#
        try Data(Array((header + "\n").utf8) + body).write(to: URL(fileURLWithPath: "\(directory)/\(name)"))
    }

    /// `regression-finding-time-year-2826`: the checksum is right, the finding is not.
    @Test("spool: a segment whose finding has a time past 2262 is quarantined at load, not a trap")
    func farFindingTime() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeSegment(
            dir, name: "segment-00000000000000000001.ndjson", lines: [findingLine(time: "2826-11-26T01:56:53.173Z")])
        let spool = try Spool(directory: dir, maxBytes: 1 << 20)
        let segment = try #require(spool.oldest)
        guard case .corrupt = spool.load(segment) else {
            Issue.record("a finding without a time pgnode can hold was loaded")
            return
        }
        #expect(spool.isEmpty)
        #expect(spool.quarantined == 1)
    }

    /// `regression-sequence-uint64-max`: the next sequence would be UInt64.max + 1.
    @Test("spool: a segment named with sequence UInt64.max is quarantined at start, and the spool goes on")
    func lastSequence() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeSegment(
            dir, name: "segment-18446744073709551615.ndjson", lines: [findingLine(time: "2026-11-26T01:56:53.173Z")])
        let spool = try Spool(directory: dir, maxBytes: 1 << 20)
        #expect(spool.quarantined == 1)
        #expect(spool.isEmpty)
        let record = try FindingRecord(line: findingLine(time: "2026-11-26T01:56:54.000Z"))
        spool.append([record])
        #expect(spool.findingCount == 1)
        guard let segment = spool.oldest, case .records(let records) = spool.load(segment) else {
            Issue.record("the batch appended after start did not load")
            return
        }
        #expect(records == [record])
    }

    /// `regression-header-counts-sum-overflows`: two headers claiming Int64.max findings each.
    @Test("spool: header counts whose sum passes Int64.max are no trap; the lying segments are quarantined")
    func headerCountSum() throws {
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (index, name) in ["segment-00000000000000000001.ndjson", "segment-00000000000000000002.ndjson"].enumerated()
        {
            try writeSegment(
                dir, name: name,
                lines: [findingLine(time: "2026-11-26T01:56:53.173Z", id: String(repeating: "\(index)", count: 32))],
                count: Int64.max)
        }
        let spool = try Spool(directory: dir, maxBytes: 1 << 20)
        #expect(spool.findingCount >= 0)
        while let segment = spool.oldest {
            guard case .corrupt = spool.load(segment) else {
                Issue.record("a segment whose header count is not its number of findings was loaded")
                return
            }
        }
        #expect(spool.findingCount == 0)
        #expect(spool.quarantined == 2)
    }
}
