/// Arithmetic for values that come from outside pgnode — cgroup files, `/proc`, BPF maps, a
/// server's settings — which may hold anything a tenant or a kernel bug puts there.
///
/// Swift traps on integer overflow and on converting a `Double` that does not fit (or is NaN)
/// to an integer; for the agent, a trap is a crash loop for the whole node. Every sum, product
/// and conversion of such a value goes through these instead: the result *saturates* at the
/// type's bound rather than wrapping or trapping, and a `Double` that is not finite is never
/// converted at all.
///
/// A saturated result is not a plausible number: it is `Int64.max` (or `.min`), out of any range
/// a kernel or PostgreSQL produces. Checks list the evidence keys that hold one in
/// `evidence.saturated` (see `Observation.flaggingSaturatedValues()`), so that a reader sees that
/// a value hit the 64-bit limit instead of mistaking it for a measurement.
extension Int64 {
    /// `self + other`, or `.max` / `.min` when the sum does not fit.
    @inlinable
    public func addingSaturating(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }

    /// `self - other`, or `.max` / `.min` when the difference does not fit.
    @inlinable
    public func subtractingSaturating(_ other: Int64) -> Int64 {
        let (difference, overflow) = subtractingReportingOverflow(other)
        return overflow ? (other < 0 ? .max : .min) : difference
    }

    /// `self × other`, or `.max` / `.min` when the product does not fit.
    @inlinable
    public func multipliedSaturating(by other: Int64) -> Int64 {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        guard overflow else { return product }
        return (self < 0) == (other < 0) ? .max : .min
    }

    /// Whether this is one of the bounds a saturating operation stops at.
    @inlinable
    public var isSaturated: Bool { self == .max || self == .min }

    /// `value` rounded toward zero, clamped to `Int64.min ... Int64.max`; nil when `value` is
    /// NaN or infinite (a number that is not one is never turned into one).
    @inlinable
    public init?(clampingFinite value: Double) {
        guard value.isFinite else { return nil }
        // 2^63 is exactly representable; every finite double below it converts.
        if value >= 9_223_372_036_854_775_808.0 {
            self = .max
        } else if value < -9_223_372_036_854_775_808.0 {
            self = .min
        } else {
            self = Int64(value)
        }
    }
}

extension UInt64 {
    /// `self + other`, or `.max` when the sum does not fit.
    @inlinable
    public func addingSaturating(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    /// `self × other`, or `.max` when the product does not fit.
    @inlinable
    public func multipliedSaturating(by other: UInt64) -> UInt64 {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? .max : product
    }
}

extension Int {
    /// `self + other`, or `.max` / `.min` when the sum does not fit.
    @inlinable
    public func addingSaturating(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }

    /// `self × other`, or `.max` / `.min` when the product does not fit.
    @inlinable
    public func multipliedSaturating(by other: Int) -> Int {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        guard overflow else { return product }
        return (self < 0) == (other < 0) ? .max : .min
    }
}

extension Sequence where Element == Int64 {
    /// The sum of the elements, or `Int64.max` / `.min` as soon as a partial sum does not fit
    /// (the bound then sticks: later elements do not bring it back into range).
    @inlinable
    public func saturatingSum() -> Int64 {
        var sum: Int64 = 0
        for element in self {
            let (next, overflow) = sum.addingReportingOverflow(element)
            if overflow { return element > 0 ? .max : .min }
            sum = next
        }
        return sum
    }
}

extension Sequence where Element == UInt64 {
    /// The sum of the elements, saturating at `UInt64.max`.
    @inlinable
    public func saturatingSum() -> UInt64 { reduce(0) { $0.addingSaturating($1) } }
}
