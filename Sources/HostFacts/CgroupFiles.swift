/// Parsers for the text formats of cgroup control files. Pure: text in, values out; lines that
/// do not parse are skipped, never fatal.
///
/// The kernel prints these counters as unsigned 64-bit numbers (`%llu`). One above `Int64.max`
/// (a counter that drifted below zero prints as nearly 2^64) is kept as `Int64.max` — saturated,
/// which the checks flag in `evidence.saturated` — rather than dropped or wrapped; text that is
/// not an unsigned decimal number (a sign, digits past 2^64, anything else) is left out.
public enum CgroupFiles {
    /// `key value` lines (memory.stat, memory.events, memory.oom_control).
    public static func keyValues(_ text: String) -> [String: Int64] {
        var result: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 2, let value = counter(fields[1]) else { continue }
            result[String(fields[0])] = value
        }
        return result
    }

    /// An unsigned decimal counter, clamped to `Int64.max`; nil when `text` is not one.
    public static func counter(_ text: Substring) -> Int64? {
        guard let value = UInt64(text) else { return nil }
        return Int64(clamping: value)
    }

    /// A memory limit as a cgroup file states it.
    public enum Limit: Sendable, Equatable {
        /// No limit: v2 `max`, or a v1 value at or above 2^62 (v1 spells "no limit" as
        /// 9223372036854771712, LONG_MAX rounded down to the page size).
        case unlimited
        /// A limit in bytes.
        case bytes(Int64)

        /// The bytes, or nil when unlimited.
        public var bytes: Int64? {
            if case .bytes(let b) = self { return b }
            return nil
        }
    }

    /// Parses a limit file (`memory.max`, `memory.limit_in_bytes`, `memory.high`); nil when the
    /// text is neither `max` nor a number.
    public static func limit(_ text: String) -> Limit? {
        let trimmed = text.trimmingWhitespace()
        if trimmed == "max" { return .unlimited }
        guard let value = UInt64(trimmed) else { return nil }
        return value >= 1 << 62 ? .unlimited : .bytes(Int64(value))
    }

    /// A single counter (memory.usage_in_bytes, memory.current, memory.failcnt), as `counter`.
    public static func integer(_ text: String) -> Int64? {
        counter(Substring(text.trimmingWhitespace()))
    }

    /// Pressure stall information (`memory.pressure`, `/proc/pressure/memory`):
    /// `some avg10=0.12 avg60=0.05 avg300=0.01 total=12345` and a `full` line.
    public static func pressure(_ text: String) -> Pressure? {
        var pressure = Pressure()
        var sawAny = false
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let kind = fields.first, kind == "some" || kind == "full" else { continue }
            var line = Pressure.Line()
            for field in fields.dropFirst() {
                let pair = field.split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { continue }
                switch pair[0] {
                case "avg10": line.avg10 = share(pair[1])
                case "avg60": line.avg60 = share(pair[1])
                case "avg300": line.avg300 = share(pair[1])
                case "total": line.totalMicroseconds = counter(pair[1])
                default: break
                }
            }
            guard line.avg10 != nil || line.totalMicroseconds != nil else { continue }
            sawAny = true
            if kind == "some" { pressure.some = line } else { pressure.full = line }
        }
        return sawAny ? pressure : nil
    }

    /// A PSI average: a finite, non-negative percentage (the kernel prints `12.47`); nil for
    /// anything else (`nan`, `inf`, `-1` parse as doubles but are no share of time).
    static func share(_ text: Substring) -> Double? {
        guard let value = Double(text), value.isFinite, value >= 0 else { return nil }
        return value
    }

    /// Pressure stall information of one resource.
    public struct Pressure: Sendable, Equatable {
        /// One PSI line.
        public struct Line: Sendable, Equatable {
            /// Share of wall time stalled over the last 10 s, in percent.
            public var avg10: Double?
            /// … over 60 s.
            public var avg60: Double?
            /// … over 300 s.
            public var avg300: Double?
            /// Total stall time in microseconds.
            public var totalMicroseconds: Int64?
        }

        /// Some tasks stalled.
        public var some: Line?
        /// All non-idle tasks stalled at once.
        public var full: Line?
    }
}
