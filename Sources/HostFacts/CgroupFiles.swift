/// Parsers for the text formats of cgroup control files. Pure: text in, values out; lines that
/// do not parse are skipped, never fatal.
public enum CgroupFiles {
    /// `key value` lines (memory.stat, memory.events, memory.oom_control, io.stat-style pairs).
    /// Values that are not integers, or overflow 64 bits, are left out.
    public static func keyValues(_ text: String) -> [String: Int64] {
        var result: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 2, let value = Int64(fields[1]) else { continue }
            result[String(fields[0])] = value
        }
        return result
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

    /// A single integer (memory.usage_in_bytes, memory.current, memory.failcnt).
    public static func integer(_ text: String) -> Int64? {
        Int64(text.trimmingWhitespace())
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
                case "avg10": line.avg10 = Double(pair[1])
                case "avg60": line.avg60 = Double(pair[1])
                case "avg300": line.avg300 = Double(pair[1])
                case "total": line.totalMicroseconds = Int64(pair[1])
                default: break
                }
            }
            guard line.avg10 != nil || line.totalMicroseconds != nil else { continue }
            sawAny = true
            if kind == "some" { pressure.some = line } else { pressure.full = line }
        }
        return sawAny ? pressure : nil
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
