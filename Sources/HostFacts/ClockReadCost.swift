import Glibc

/// What one `clock_gettime(CLOCK_MONOTONIC)` costs in pgnode's own process: a read of the vDSO
/// when the clocksource is one the vDSO serves (tens of nanoseconds), a system call otherwise
/// (hundreds, more under a hypervisor that traps the clock). PostgreSQL reads this clock
/// around every timed I/O and plan node when timing settings are on, so the cost is theirs too.
///
/// A measurement, not a fact read from the node: it is evidence, never compared in tests.
public struct ClockReadCost: Sendable, Equatable {
    /// The median over the batches of the mean time of one call, in nanoseconds (one decimal).
    public var nanosecondsPerCall: Double
    /// How many batches were timed.
    public var batches: Int
    /// How many calls each batch made.
    public var callsPerBatch: Int
    /// The clocksource that was current when it was measured (nil if unknown).
    public var clocksource: String?

    /// A measurement as given.
    public init(nanosecondsPerCall: Double, batches: Int, callsPerBatch: Int, clocksource: String?) {
        self.nanosecondsPerCall = nanosecondsPerCall
        self.batches = batches
        self.callsPerBatch = callsPerBatch
        self.clocksource = clocksource
    }

    /// Times `batches` loops of `callsPerBatch` calls (5 × 1,000 by default: well under a
    /// millisecond on a vDSO clock, tens of milliseconds on a trapped one) and keeps the median
    /// batch, so that a preemption in one batch does not count. Nil when the clock cannot be read.
    public static func measure(clocksource: String?, batches: Int = 5, callsPerBatch: Int = 1000) -> ClockReadCost? {
        let batches = max(1, min(batches, 101))
        let calls = max(1, min(callsPerBatch, 1_000_000))
        var perCall: [Double] = []
        var now = timespec()
        var sink = 0
        for _ in 0..<batches {
            guard let start = monotonicNanoseconds() else { return nil }
            for _ in 0..<calls {
                clock_gettime(CLOCK_MONOTONIC, &now)
                sink &+= now.tv_nsec
            }
            guard let end = monotonicNanoseconds(), end >= start else { return nil }
            perCall.append(Double(end - start) / Double(calls))
        }
        withExtendedLifetime(sink) {}
        let median = perCall.sorted()[perCall.count / 2]
        // At least 0.1 ns: a measured call is never free, and zero would read as "not measured".
        let rounded = max(0.1, (median * 10).rounded() / 10)
        return ClockReadCost(
            nanosecondsPerCall: rounded, batches: batches, callsPerBatch: calls, clocksource: clocksource)
    }

    private static func monotonicNanoseconds() -> Int64? {
        var ts = timespec()
        guard clock_gettime(CLOCK_MONOTONIC, &ts) == 0 else { return nil }
        return Int64(ts.tv_sec).multipliedReportingOverflow(by: 1_000_000_000).partialValue &+ Int64(ts.tv_nsec)
    }
}
