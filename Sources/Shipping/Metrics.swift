import Synchronization

/// Counters and gauges with labels, rendered in the Prometheus text exposition format (0.0.4).
/// Thread-safe; cheap enough to update on every finding.
public final class MetricsRegistry: Sendable {
    /// A metric's kind.
    public enum Kind: String, Sendable {
        case counter
        case gauge
    }

    private struct Family: Sendable {
        var help: String
        var kind: Kind
        var series: [String: (labels: [(String, String)], value: Double)] = [:]
    }

    private let state = Mutex<[String: Family]>([:])

    /// An empty registry.
    public init() {}

    /// Declares a metric, so that it is listed (with no series, or `initial` without labels) before any update.
    public func declare(_ name: String, _ kind: Kind, help: String, initial: Double? = nil) {
        state.withLock { families in
            if families[name] == nil { families[name] = Family(help: help, kind: kind) }
            if let initial, families[name]!.series[""] == nil { families[name]!.series[""] = ([], initial) }
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

    /// The current value of a series; 0 when it has none.
    public func value(_ name: String, _ labels: [(String, String)] = []) -> Double {
        state.withLock { $0[name]?.series[Self.key(labels)]?.value ?? 0 }
    }

    /// The sum over every series of a metric.
    public func total(_ name: String) -> Double {
        state.withLock { $0[name]?.series.values.reduce(0) { $0 + $1.value } ?? 0 }
    }

    private func update(_ name: String, _ labels: [(String, String)], _ change: (inout Double) -> Void) {
        let key = Self.key(labels)
        state.withLock { families in
            if families[name] == nil { families[name] = Family(help: name, kind: .gauge) }
            var value = families[name]!.series[key]?.value ?? 0
            change(&value)
            families[name]!.series[key] = (labels, value)
        }
    }

    private static func key(_ labels: [(String, String)]) -> String {
        labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",")
    }

    private static func escape(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    private static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value.rounded() == value, abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    /// The exposition text: `# HELP`, `# TYPE` and the series of each metric, sorted by name.
    public func render() -> String {
        let families = state.withLock { $0 }
        var out = ""
        for name in families.keys.sorted() {
            let family = families[name]!
            out += "# HELP \(name) \(family.help)\n# TYPE \(name) \(family.kind.rawValue)\n"
            for key in family.series.keys.sorted() {
                let value = family.series[key]!.value
                out += key.isEmpty ? "\(name) \(Self.format(value))\n" : "\(name){\(key)} \(Self.format(value))\n"
            }
        }
        return out
    }
}
