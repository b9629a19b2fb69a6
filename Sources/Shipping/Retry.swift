import PGNodeModel

/// Exponential backoff with jitter: attempt n waits between half and all of
/// `min(maximum, initial × 2ⁿ)` seconds ("equal jitter"), so that many agents whose receiver comes
/// back do not retry in lockstep.
public struct Backoff: Sendable, Equatable {
    /// The first delay's upper bound, in seconds.
    public var initial: Double
    /// The largest delay, in seconds.
    public var maximum: Double

    /// A backoff policy.
    public init(initial: Double = 1, maximum: Double = 60) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The delay before retry `attempt` (0 for the first retry); `random` returns a value in [0, 1).
    public func delay(attempt: Int, random: () -> Double = { Double.random(in: 0..<1) }) -> Double {
        let exponent = Double(min(attempt, 40))
        let ceiling = min(maximum, initial * Double(1 << Int(min(exponent, 30))))
        return ceiling / 2 + random() * ceiling / 2
    }
}

/// The `Retry-After` header (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
public enum RetryAfter {
    /// Seconds to wait from `now`; nil when the value is neither form. A date in the past gives 0.
    public static func seconds(_ value: String, now: Timestamp) -> Double? {
        let text = value.trimmingCharacters(in: " \t")
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            return Double(text.prefix(10))
        }
        guard let date = httpDate(text) else { return nil }
        return max(0, Double(date.nanoseconds - now.nanoseconds) / 1e9)
    }

    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
    /// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
    public static func httpDate(_ text: String) -> Timestamp? {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
        var day: Int64?
        var month: Int64?
        var year: Int64?
        var clock: String?
        if parts.count == 6, parts[5] == "GMT" {
            // IMF-fixdate: Sun 06 Nov 1994 08:49:37 GMT (comma removed).
            day = Int64(parts[1])
            month = months.firstIndex(of: parts[2]).map { Int64($0 + 1) }
            year = Int64(parts[3])
            clock = parts[4]
        } else if parts.count == 4, parts[3] == "GMT" {
            // RFC 850: Sunday 06-Nov-94 08:49:37 GMT.
            let dmy = parts[1].split(separator: "-").map(String.init)
            guard dmy.count == 3, let yy = Int64(dmy[2]) else { return nil }
            day = Int64(dmy[0])
            month = months.firstIndex(of: dmy[1]).map { Int64($0 + 1) }
            year = yy < 100 ? (yy < 70 ? 2000 + yy : 1900 + yy) : yy
            clock = parts[2]
        } else if parts.count == 5 {
            // asctime: Sun Nov 6 08:49:37 1994.
            month = months.firstIndex(of: parts[1]).map { Int64($0 + 1) }
            day = Int64(parts[2])
            clock = parts[3]
            year = Int64(parts[4])
        }
        guard let day, let month, let year, let clock, (1...31).contains(day) else { return nil }
        let hms = clock.split(separator: ":").compactMap { Int64($0) }
        guard hms.count == 3, hms[0] < 24, hms[1] < 60, hms[2] < 61 else { return nil }
        let days = Timestamp.days(year: year, month: month, day: day)
        return Timestamp(nanoseconds: (days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]) * 1_000_000_000)
    }
}
