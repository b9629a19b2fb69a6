import Synchronization

/// Counters, gauges and histograms with labels, rendered in the Prometheus text exposition
/// format (0.0.4). Thread-safe; cheap enough to update on every finding.
///
/// Series can be removed (`remove(matching:)`: the series of a container that has gone), label
/// values and help texts are escaped as the format requires, and collectors registered with
/// `onRender` refresh their series just before each rendering (the process metrics).
public final class MetricsRegistry: Sendable {
    /// A metric's kind.
    public enum Kind: String, Sendable {
        case counter
        case gauge
        case histogram
    }

    /// One series: its labels and either a value or a histogram's counts.
    private struct Series: Sendable {
        var labels: [(String, String)]
        var value: Double = 0
        /// Per bucket (not cumulative) for a histogram; the last one is `+Inf`.
        var bucketCounts: [UInt64] = []
        var count: UInt64 = 0
    }

    private struct Family: Sendable {
        var help: String
        var kind: Kind
        /// A histogram's upper bounds, ascending, without `+Inf`.
        var buckets: [Double] = []
        var series: [String: Series] = [:]
    }

    private let state = Mutex<[String: Family]>([:])
    private let collectors = Mutex<[@Sendable (MetricsRegistry) -> Void]>([])

    /// An empty registry.
    public init() {}

    /// Declares a metric, so that it is listed (with no series, or `initial` without labels) before any update.
    public func declare(_ name: String, _ kind: Kind, help: String, initial: Double? = nil) {
        state.withLock { families in
            if families[name] == nil { families[name] = Family(help: help, kind: kind) }
            if let initial, families[name]!.series[""] == nil {
                families[name]!.series[""] = Series(labels: [], value: initial)
            }
        }
    }

    /// Declares a histogram with upper bounds `buckets` (sorted, deduplicated; non-finite bounds
    /// are dropped: `+Inf` is always the last bucket).
    public func declareHistogram(_ name: String, buckets: [Double], help: String) {
        let bounds = Array(Set(buckets.filter(\.isFinite))).sorted()
        state.withLock { families in
            if families[name] == nil { families[name] = Family(help: help, kind: .histogram, buckets: bounds) }
        }
    }

    /// Adds `amount` to a counter (or gauge).
    public func add(_ name: String, _ labels: [(String, String)] = [], _ amount: Double = 1) {
        update(name, labels) { $0 += amount }
    }

    /// Sets a gauge.
    public func set(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        update(name, labels) { $0 = value }
    }

    /// Counts `value` in a histogram declared with `declareHistogram` (ignored for any other
    /// metric, and for NaN).
    public func observe(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        guard !value.isNaN else { return }
        let key = Self.key(labels)
        state.withLock { families in
            guard var family = families[name], family.kind == .histogram else { return }
            var series = family.series[key] ?? Series(labels: labels)
            if series.bucketCounts.count != family.buckets.count + 1 {
                series.bucketCounts = Array(repeating: 0, count: family.buckets.count + 1)
            }
            let index = family.buckets.firstIndex { value <= $0 } ?? family.buckets.count
            series.bucketCounts[index] &+= 1
            series.count &+= 1
            series.value += value
            family.series[key] = series
            families[name] = family
        }
    }

    /// Removes one series of a metric.
    public func remove(_ name: String, _ labels: [(String, String)]) {
        let key = Self.key(labels)
        state.withLock { _ = $0[name]?.series.removeValue(forKey: key) }
    }

    /// Removes, from every metric, each series whose labels include all of `labels` (the
    /// metrics themselves stay declared); returns how many were removed. An empty `labels`
    /// removes nothing.
    @discardableResult
    public func remove(matching labels: [(String, String)]) -> Int {
        guard !labels.isEmpty else { return 0 }
        return state.withLock { families in
            var removed = 0
            for name in families.keys {
                let doomed = families[name]!.series.filter { _, series in
                    labels.allSatisfy { wanted in series.labels.contains { $0 == wanted } }
                }.keys
                for key in doomed { families[name]!.series.removeValue(forKey: key) }
                removed += doomed.count
            }
            return removed
        }
    }

    /// The current value of a series (a histogram's sum); 0 when it has none.
    public func value(_ name: String, _ labels: [(String, String)] = []) -> Double {
        state.withLock { $0[name]?.series[Self.key(labels)]?.value ?? 0 }
    }

    /// Whether a metric has a series with exactly these labels.
    public func has(_ name: String, _ labels: [(String, String)] = []) -> Bool {
        state.withLock { $0[name]?.series[Self.key(labels)] != nil }
    }

    /// How many series a metric has.
    public func seriesCount(_ name: String) -> Int {
        state.withLock { $0[name]?.series.count ?? 0 }
    }

    /// The sum over every series of a metric.
    public func total(_ name: String) -> Double {
        state.withLock { $0[name]?.series.values.reduce(0) { $0 + $1.value } ?? 0 }
    }

    /// Calls `collect` before every `render()`, to refresh series that are read rather than
    /// counted (the process's CPU time, memory, descriptors).
    public func onRender(_ collect: @escaping @Sendable (MetricsRegistry) -> Void) {
        collectors.withLock { $0.append(collect) }
    }

    private func update(_ name: String, _ labels: [(String, String)], _ change: (inout Double) -> Void) {
        let key = Self.key(labels)
        state.withLock { families in
            if families[name] == nil { families[name] = Family(help: name, kind: .gauge) }
            guard families[name]!.kind != .histogram else { return }
            var series = families[name]!.series[key] ?? Series(labels: labels)
            change(&series.value)
            families[name]!.series[key] = series
        }
    }

    private static func key(_ labels: [(String, String)]) -> String {
        labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
    }

    /// A label value as the text format wants it: `\`, `"` and line feed escaped.
    static func escape(_ value: String) -> String {
        var out = ""
        for character in value.unicodeScalars {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// A help text as the text format wants it: `\` and line feed escaped.
    static func escapeHelp(_ text: String) -> String {
        var out = ""
        for character in text.unicodeScalars {
            switch character {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value.rounded() == value, abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// The exposition text: `# HELP`, `# TYPE` and the series of each metric, sorted by name; a
    /// histogram's series as `_bucket{le=…}` (cumulative, ending with `+Inf`), `_sum` and `_count`.
    public func render() -> String {
        for collect in collectors.withLock({ $0 }) { collect(self) }
        let families = state.withLock { $0 }
        var out = ""
        for name in families.keys.sorted() {
            let family = families[name]!
            out += "# HELP \(name) \(Self.escapeHelp(family.help))\n# TYPE \(name) \(family.kind.rawValue)\n"
            for key in family.series.keys.sorted() {
                let series = family.series[key]!
                guard family.kind == .histogram else {
                    out +=
                        key.isEmpty
                        ? "\(name) \(Self.format(series.value))\n" : "\(name){\(key)} \(Self.format(series.value))\n"
                    continue
                }
                let prefix = key.isEmpty ? "" : key + ","
                var cumulative: UInt64 = 0
                for (index, bound) in (family.buckets + [Double.infinity]).enumerated() {
                    cumulative &+= index < series.bucketCounts.count ? series.bucketCounts[index] : 0
                    out += "\(name)_bucket{\(prefix)le=\"\(Self.format(bound))\"} \(cumulative)\n"
                }
                let labels = key.isEmpty ? "" : "{\(key)}"
                out += "\(name)_sum\(labels) \(Self.format(series.value))\n\(name)_count\(labels) \(series.count)\n"
            }
        }
        return out
    }
}
