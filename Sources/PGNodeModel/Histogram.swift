/// A log2 histogram as the BCC tools print it: bucket `i` counts values in [2^i, 2^(i+1)),
/// bucket 0 also holding zero.
public struct Log2Histogram: Sendable, Equatable {
    /// The counts by bucket index.
    public var counts: [UInt64]

    /// A histogram from counts indexed by log2 bucket.
    public init(counts: [UInt64]) { self.counts = counts }

    /// The buckets that hold anything, as `(low, high, count)` with inclusive bounds.
    public var buckets: [(low: UInt64, high: UInt64, count: UInt64)] {
        counts.enumerated().compactMap { index, count in
            guard count > 0, index < 64 else { return nil }
            let low: UInt64 = index == 0 ? 0 : 1 << UInt64(index)
            let high: UInt64 = index == 63 ? .max : (1 << UInt64(index + 1)) - 1
            return (low, high, count)
        }
    }

    /// The evidence form: `[{low, high, count}]`.
    public var json: JSONValue {
        .array(buckets.map { .object(["low": .from($0.low), "high": .from($0.high), "count": .from($0.count)]) })
    }

    /// Reads the evidence form back; nil when `value` is not an array of buckets.
    public static func buckets(from value: JSONValue) -> [(low: UInt64, high: UInt64, count: UInt64)]? {
        guard let items = value.arrayValue, !items.isEmpty else { return nil }
        var result: [(low: UInt64, high: UInt64, count: UInt64)] = []
        for item in items {
            guard let object = item.objectValue, object.keys == ["low", "high", "count"],
                let low = object["low"]?.intValue, let high = object["high"]?.intValue,
                let count = object["count"]?.intValue, low >= 0, high >= low, count >= 0
            else { return nil }
            result.append((UInt64(low), UInt64(high), UInt64(count)))
        }
        return result
    }
}
