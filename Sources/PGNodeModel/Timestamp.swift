import Glibc

/// A wall-clock instant in nanoseconds since the Unix epoch, printed as RFC 3339 UTC.
public struct Timestamp: Sendable, Equatable, Comparable, Hashable {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    public var nanoseconds: Int64

    /// The instant `nanoseconds` after the epoch.
    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// The current wall-clock time.
    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(nanoseconds: Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
    }

    /// Seconds since the epoch, rounded down (floor division, defined for every `nanoseconds`).
    public var seconds: Int64 { Self.floorDivision(nanoseconds, 1_000_000_000).quotient }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    public var rfc3339: String {
        let (secs, nanos) = Self.floorDivision(nanoseconds, 1_000_000_000)
        let millis = nanos / 1_000_000
        let (days, sod) = Self.floorDivision(secs, 86_400)
        let (y, m, d) = Self.civil(fromDays: days)
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(sod / 3600, 2)):\(pad(sod / 60 % 60, 2)):"
            + "\(pad(sod % 60, 2)).\(pad(millis, 3))Z"
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// `value` divided by a positive `divisor`, rounded down, and the remainder in `0..<divisor`
    /// (no overflow for any `value`, `Int64.min` included).
    static func floorDivision(_ value: Int64, _ divisor: Int64) -> (quotient: Int64, remainder: Int64) {
        let (q, r) = value.quotientAndRemainder(dividingBy: divisor)
        return r < 0 ? (q - 1, r + divisor) : (q, r)
    }

    /// Days since the epoch to a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func civil(fromDays days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
