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
///
/// The value comes from the receiver or any proxy on the way, so it is clamped: the wait is never
/// negative and never longer than a maximum (`defaultMaximum`, 600 s, unless the shipper is given
/// another), whatever the text says — `99999999999999999999`, a date in the year 9999, or one
/// before the epoch. A value that is neither form is ignored (nil), and the backoff applies.
public enum RetryAfter {
    /// The longest wait a `Retry-After` can impose by default, in seconds (documented in
    /// docs/agent.md).
    public static let defaultMaximum: Double = 600

    /// Seconds to wait from `now`, within `0...maximum`; nil when the value is neither form. A date
    /// in the past gives 0.
    public static func seconds(_ value: String, now: Timestamp, maximum: Double = defaultMaximum) -> Double? {
        let cap = maximum.isNaN ? 0 : min(max(0, maximum), Double(Int64.max))
        let text = value.trimmingCharacters(in: " \t")
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            // delay-seconds: any number of digits; more than 18 (leading zeros aside) is beyond any cap.
            let digits = text.drop(while: { $0 == "0" })
            guard digits.utf8.count <= 18 else { return cap }
            return min(Double(Int64(digits) ?? 0), cap)
        }
        guard let date = HTTPDate.epochSeconds(text, now: now) else { return nil }
        // HTTP dates are within ±3×10¹¹ s of the epoch: a Double holds them to well under a millisecond.
        let delay = Double(date) - Double(now.nanoseconds) / 1e9
        return min(max(0, delay), cap)
    }
}
