import ProbeObjects
import Testing

@testable import Probes

/// The query probe's ring-buffer records and windows, from bytes: the text and the title are a
/// tenant's memory (whatever the backend holds), the counters a kernel's.
@Suite("query probe: records and windows")
struct QueryProbeDecodingTests {
    /// A record's bytes with `text` (nil: none, as for the extended protocol) and `title`.
    static func record(
        duration: UInt64 = 5_000_000, states: [UInt64] = [1, 2, 3, 4, 5], text: [UInt8]?, title: [UInt8],
        protocolValue: UInt32 = UInt32(PGN_QUERY_SIMPLE.rawValue), textLength: Int32? = nil
    ) -> [UInt8] {
        var e = pgn_query_event()
        e.duration_ns = duration
        withUnsafeMutableBytes(of: &e.state_ns) { raw in
            for (i, v) in states.prefix(5).enumerated() { raw.storeBytes(of: v, toByteOffset: i * 8, as: UInt64.self) }
        }
        e.target = 3
        e.tgid = 42
        e.pid = 43
        e.ns_tgid = 7
        e.protocol = protocolValue
        withUnsafeMutableBytes(of: &e.title) { raw in
            for (i, b) in title.prefix(raw.count).enumerated() { raw[i] = b }
        }
        if let text {
            withUnsafeMutableBytes(of: &e.text) { raw in
                for (i, b) in text.prefix(raw.count).enumerated() { raw[i] = b }
            }
            e.text_len = textLength ?? Int32(min(text.count + 1, Int(PGN_QUERY_TEXT_LEN)))
        }
        return withUnsafeBytes(of: e) { Array($0) }
    }

    @Test("a record decodes: durations, states, pids, protocol, the text without its NUL, the title")
    func decode() throws {
        let bytes = Self.record(text: Array("SELECT 1".utf8), title: Array("postgres: app db [local] SELECT".utf8))
        let s = try #require(QueryProbe.statement(bytes))
        #expect(s.durationNs == 5_000_000)
        #expect(s.stateNs == [1, 2, 3, 4, 5])
        #expect((s.target, s.tgid, s.pid, s.namespaceTGID) == (3, 42, 43, 7))
        #expect(s.protocol == .simple)
        #expect(s.text == Array("SELECT 1".utf8))
        #expect(s.title == "postgres: app db [local] SELECT")
    }

    @Test("hostile bytes: a too-short record is nil; lengths out of range, no NUL, invalid UTF-8 never trap")
    func hostile() throws {
        #expect(QueryProbe.statement([]) == nil)
        #expect(QueryProbe.statement([UInt8](repeating: 0xFF, count: MemoryLayout<pgn_query_event>.size - 1)) == nil)
        let full = [UInt8](repeating: 0xFF, count: 300)
        for length in [Int32.min, -1, 0, 1, 256, 257, Int32.max] {
            let bytes = Self.record(text: full, title: full, textLength: length)
            let s = try #require(QueryProbe.statement(bytes))
            #expect((s.text?.count ?? 0) <= Int(PGN_QUERY_TEXT_LEN) - 1, "\(length)")
            #expect(s.text == nil || length > 0, "\(length)")
        }
        // Every byte 0xFF, the record's every field: decodes.
        let garbage = [UInt8](repeating: 0xFF, count: MemoryLayout<pgn_query_event>.size + 17)
        let s = try #require(QueryProbe.statement(garbage))
        #expect(s.protocol == .extended)
    }

    @Test("windows: counters and the histogram become differences; the slowest pass, at most five per target")
    func window() {
        var baseline = QueryProbe.initialBaseline
        var first = QueryResult()
        first.extended = 10
        first.totalNs = 1000
        first.stateNs = [500, 500, 0, 0, 0]
        first.latencyMicroseconds[3] = 10
        let w1 = QueryProbe.window([0: first], baseline: &baseline)
        #expect(w1[0]?.extended == 10)
        var second = first
        second.extended = 25
        second.simple = 2
        second.totalNs = 4000
        second.stateNs = [500, 2000, 1500, 0, 0]
        second.latencyMicroseconds[3] = 27
        second.slowest = [
            QueryResult.Statement(durationNs: 9, stateNs: [9, 0, 0, 0, 0], tgid: 1, pid: 1, protocol: .simple)
        ]
        let w2 = QueryProbe.window([0: second], baseline: &baseline)
        #expect(w2[0]?.extended == 15 && w2[0]?.simple == 2)
        #expect(w2[0]?.stateNs == [0, 1500, 1500, 0, 0])
        #expect(w2[0]?.latencyMicroseconds[3] == 17)
        #expect(w2[0]?.slowest.count == 1)
        // Nothing new (the slow statements were drained): no entry.
        var third = second
        third.slowest = []
        #expect(QueryProbe.window([0: third], baseline: &baseline)[0] == nil)
        #expect(QueryProbe.events(in: w2) == 17)
    }

    @Test("every done probe is attached before its start probe, so that no statement begun mid-attach stays open")
    func doneBeforeStart() {
        let order = QueryProbe.functions.map(\.symbol)
        let pairs = [
            ("query__start", "query__done"), ("query__execute__start", "query__execute__done"),
            ("lock__wait__start", "lock__wait__done"), ("lwlock__wait__start", "lwlock__wait__done"),
        ]
        for (start, done) in pairs {
            let s = order.firstIndex(of: start)
            let d = order.firstIndex(of: done)
            #expect(s != nil && d != nil, "\(start), \(done) in \(order)")
            if let s, let d { #expect(d < s, "\(done) attaches after \(start): \(order)") }
        }
        #expect(order.count == pairs.count * 2)
    }
}
