import Checks
import PGNodeModel
import Testing

@Suite("query.latency: facts in, finding out")
struct QueryLatencyCheckTests {
    typealias Report = QueryLatencyReport
    static let window: Int64 = 10_000_000_000

    /// A report of `n` extended-protocol statements whose time is `states` (on_cpu, cpu_wait,
    /// io_wait, lock_wait, other), 1 ms each in the 1024–2047 µs bucket.
    static func report(
        _ states: [Int64], n: Int64 = 100, throttled: Int64 = 0, reclaim: Int64 = 0, writeback: Int64? = nil
    ) -> Report {
        var histogram = [UInt64](repeating: 0, count: 32)
        histogram[10] = UInt64(n)
        return Report(
            simple: 0, extended: n, stateNanoseconds: states, throttledNanoseconds: throttled,
            reclaimNanoseconds: reclaim, writebackPausedNanoseconds: writeback, latencyMicroseconds: histogram,
            windowNanoseconds: window)
    }

    static func share(_ o: Observation, _ name: String) -> Double? { o.evidence["time_share"]?[name]?.doubleValue }

    @Test("no statement: info, every evidence field present, shares zero")
    func none() {
        let o = QueryLatencyCheck.evaluate(
            Report(simple: 0, extended: 0, stateNanoseconds: [0, 0, 0, 0, 0], windowNanoseconds: Self.window))
        #expect(o.severity == .info)
        #expect(o.evidence["queries"] == .int(0))
        #expect(o.evidence["p99_us"] == .null)
        #expect(o.evidence["explained_by"] == .null)
        for name in Report.states { #expect(Self.share(o, name) == 0) }
        for key in ["latency_us", "p50_us", "p95_us", "by_protocol", "slowest", "time_share"] {
            #expect(o.evidence[key] != nil, "\(key)")
        }
    }

    @Test("the time shares are the states' fractions of all statement time and sum to 1")
    func shares() throws {
        let o = QueryLatencyCheck.evaluate(Self.report([500, 100, 200, 150, 50]))
        #expect(Self.share(o, "on_cpu") == 0.5)
        #expect(Self.share(o, "cpu_wait") == 0.1)
        #expect(Self.share(o, "io_wait") == 0.2)
        #expect(Self.share(o, "lock_wait") == 0.15)
        #expect(Self.share(o, "other") == 0.05)
        let sum = Report.states.compactMap { Self.share(o, $0) }.reduce(0, +)
        #expect(abs(sum - 1) < 1e-12)
        #expect(o.evidence["statement_ns"] == .int(1000))
        #expect(o.evidence["by_protocol"]?["extended"] == .int(100))
    }

    @Test("CPU wait above 30 % that began throttled: warning naming cpu.throttling; else cpu.contention")
    func cpuWait() {
        let throttled = QueryLatencyCheck.evaluate(Self.report([600, 400, 0, 0, 0], throttled: 300))
        #expect(throttled.severity == .warning)
        #expect(throttled.evidence["explained_by"] == "cpu.throttling")
        #expect(
            throttled.summary.contains("40 %") && throttled.summary.contains("cpu.throttling"), "\(throttled.summary)")
        #expect(throttled.remedy.contains("CPU limit"))
        let contended = QueryLatencyCheck.evaluate(Self.report([600, 400, 0, 0, 0], throttled: 100))
        #expect(contended.severity == .warning)
        #expect(contended.evidence["explained_by"] == "cpu.contention")
        // At the threshold exactly: not above it.
        let edge = QueryLatencyCheck.evaluate(Self.report([700, 300, 0, 0, 0], throttled: 300))
        #expect(edge.severity == .info)
        #expect(edge.evidence["explained_by"] == "cpu.throttling")
    }

    @Test("CPU wait in a window the container's own quota throttled in at least half its periods: cpu.throttling")
    func cpuWaitQuotaBound() {
        func named(_ periods: Int64?, _ throttled: Int64?) -> JSONValue? {
            var r = Self.report([600, 400, 0, 0, 0], throttled: 0)
            r.quotaPeriods = periods
            r.quotaThrottledPeriods = throttled
            let o = QueryLatencyCheck.evaluate(r)
            #expect(o.evidence["quota_periods"] == .from(periods))
            #expect(o.evidence["quota_throttled_periods"] == .from(throttled))
            return o.evidence["explained_by"]
        }
        #expect(named(20, 20) == "cpu.throttling")
        #expect(named(20, 10) == "cpu.throttling")
        #expect(named(20, 9) == "cpu.contention")
        #expect(named(20, 0) == "cpu.contention")
        #expect(named(nil, nil) == "cpu.contention")
        #expect(named(0, 0) == "cpu.contention")
        // Counters from outside: no trap on extremes.
        #expect(named(.min, .max) == "cpu.throttling")
        #expect(named(.max, 1) == "cpu.contention")
    }

    @Test("I/O wait: writeback.throttle when dirty-page pauses make half of it or more, else blkio.noise")
    func ioWait() {
        let writeback = QueryLatencyCheck.evaluate(Self.report([500, 0, 500, 0, 0], writeback: 250))
        #expect(writeback.severity == .warning)
        #expect(writeback.evidence["explained_by"] == "writeback.throttle")
        let device = QueryLatencyCheck.evaluate(Self.report([500, 0, 500, 0, 0], writeback: 100))
        #expect(device.evidence["explained_by"] == "blkio.noise")
        let noProbe = QueryLatencyCheck.evaluate(Self.report([500, 0, 500, 0, 0]))
        #expect(noProbe.evidence["explained_by"] == "blkio.noise")
        #expect(noProbe.evidence["writeback_paused_ns"] == .null)
    }

    @Test("reclaim inside statements above 30 %: warning naming memory.reclaim")
    func reclaim() {
        let o = QueryLatencyCheck.evaluate(Self.report([900, 50, 50, 0, 0], reclaim: 400))
        #expect(o.severity == .warning)
        #expect(o.evidence["explained_by"] == "memory.reclaim")
        #expect(o.evidence["reclaim_ns"] == .int(400))
    }

    @Test("lock waits and other sleeps dominate: info naming no check below PostgreSQL")
    func postgresOwn() {
        let locks = QueryLatencyCheck.evaluate(Self.report([100, 0, 0, 900, 0]))
        #expect(locks.severity == .info)
        #expect(locks.summary.contains("PostgreSQL locks"), "\(locks.summary)")
        #expect(locks.evidence["explained_by"] == .null)
        #expect(locks.remedy.isEmpty)
        let other = QueryLatencyCheck.evaluate(Self.report([100, 0, 0, 0, 900]))
        #expect(other.severity == .info)
        #expect(other.evidence["explained_by"] == .null)
    }

    @Test("all time on a CPU: info")
    func running() {
        let o = QueryLatencyCheck.evaluate(Self.report([1000, 0, 0, 0, 0]))
        #expect(o.severity == .info)
        #expect(o.summary.contains("running on a CPU"), "\(o.summary)")
    }

    @Test("percentiles interpolate in the log2 bucket that holds the rank")
    func percentiles() {
        var counts = [UInt64](repeating: 0, count: 32)
        counts[2] = 90  // 4…7 µs
        counts[10] = 10  // 1024…2047 µs
        #expect(QueryLatencyCheck.quantile(0.5, of: counts) == 6)  // 4 + 45/90 · 4 = 6
        #expect(QueryLatencyCheck.quantile(0.95, of: counts) == 1536)  // 1024 + 5/10 · 1024
        #expect(QueryLatencyCheck.quantile(1, of: counts) == 2048)
        #expect(QueryLatencyCheck.quantile(0.5, of: [UInt64](repeating: 0, count: 32)) == nil)
        // Saturated counts stay finite.
        var huge = [UInt64](repeating: 0, count: 64)
        huge[63] = .max
        #expect(QueryLatencyCheck.quantile(0.99, of: huge) != nil)
    }

    @Test(
        "slowest: a hash of the text by default, the first 200 bytes with --query-text, null for the extended protocol")
    func slowestText() throws {
        let text = Array("SELECT * FROM t WHERE id = 1 FOR UPDATE".utf8)
        let statements = [
            Report.Statement(
                durationNanoseconds: 2_000_000_000, pid: 10, containerPID: 7, role: "client backend",
                protocolName: "simple", stateNanoseconds: [1, 0, 0, 1_999_999_999, 0], text: text),
            Report.Statement(
                durationNanoseconds: 3_000_000, pid: 11, protocolName: "extended",
                stateNanoseconds: [3_000_000, 0, 0, 0, 0]),
        ]
        var report = Self.report([1, 0, 0, 1_999_999_999, 0])
        report.slowest = statements.reversed()
        let hashed = QueryLatencyCheck.evaluate(report)
        let slowest = try #require(hashed.evidence["slowest"]?.arrayValue)
        #expect(slowest.count == 2)
        #expect(slowest[0]["duration_us"] == .int(2_000_000), "slowest first")
        #expect(slowest[0]["role"] == "client backend")
        #expect(slowest[0]["container_pid"] == .int(7))
        #expect(slowest[0]["text"] == nil)
        #expect(slowest[0]["text_sha256"] == .string(String(SHA256.hex(text).prefix(16))))
        #expect((slowest[0]["time_share"]?["lock_wait"]?.doubleValue ?? 0) > 0.99)
        #expect(slowest[1]["text"] == .null)
        #expect(slowest[1]["protocol"] == "extended")
        report.showText = true
        let shown = QueryLatencyCheck.evaluate(report)
        #expect(shown.evidence["slowest"]?.arrayValue?.first?["text"] == .string(String(decoding: text, as: UTF8.self)))
        #expect(shown.evidence["slowest"]?.arrayValue?.first?["text_sha256"] == nil)
    }

    @Test("the text is cut at 200 bytes, never inside a UTF-8 sequence")
    func truncation() {
        let ascii = [UInt8](repeating: UInt8(ascii: "a"), count: 300)
        #expect(QueryLatencyCheck.truncatedText(ascii).utf8.count == 200)
        // 199 ASCII bytes then "é" (2 bytes): the cut at 200 would split it, so it goes.
        let cut = [UInt8](repeating: UInt8(ascii: "a"), count: 199) + Array("é".utf8) + [UInt8(ascii: "b")]
        let text = QueryLatencyCheck.truncatedText(cut)
        #expect(text.utf8.count == 199)
        #expect(!text.contains("\u{FFFD}"))
        // Invalid bytes from the backend's memory never break the JSON: replaced.
        #expect(QueryLatencyCheck.truncatedText([0xFF, 0x41]) == "\u{FFFD}A")
    }

    @Test("counters at Int64.max: saturated sums are flagged, nothing traps")
    func extremes() {
        let max = Int64.max
        var report = Self.report([max, max, max, max, max], n: max, throttled: max, reclaim: max, writeback: max)
        report.simple = max
        report.slowest = [
            .init(
                durationNanoseconds: max, pid: .max, protocolName: "simple",
                stateNanoseconds: [max, max, max, max, max])
        ]
        let o = QueryLatencyCheck.evaluate(report)
        #expect(o.evidence["queries"] == .int(max))
        #expect(o.evidence["saturated"] != nil, "\(o.evidence.keys.sorted())")
        // Malformed state arrays (not five) give no causes instead of a trap.
        #expect(
            QueryLatencyCheck.causes(Report(simple: 1, extended: 0, stateNanoseconds: [1], windowNanoseconds: 1))
                .isEmpty)
        _ = QueryLatencyCheck.evaluate(Report(simple: 1, extended: 0, stateNanoseconds: [], windowNanoseconds: 0))
    }
}
